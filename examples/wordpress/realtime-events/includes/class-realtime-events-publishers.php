<?php
/**
 * Built-in publishers: published posts and approved comments.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Turns WordPress hooks into outbox events.
 */
class Realtime_Events_Publishers {

	/**
	 * Hooks the publishers.
	 */
	public static function register() {
		add_action( 'transition_post_status', array( __CLASS__, 'on_post_status' ), 10, 3 );
		add_action( 'transition_comment_status', array( __CLASS__, 'on_comment_status' ), 10, 3 );
		add_action( 'wp_insert_comment', array( __CLASS__, 'on_comment_insert' ), 10, 2 );
	}

	/**
	 * Post types whose publication is announced.
	 *
	 * @return string[]
	 */
	public static function post_types() {
		/**
		 * Filters the post types announced on the `posts` channel (default: post).
		 *
		 * @param string[] $types Post type names.
		 */
		return (array) apply_filters( 'realtime_events_post_types', array( 'post' ) );
	}

	/**
	 * A post entering `publish` from any other status (drafts, pending, scheduled posts
	 * published by cron) becomes posts / post_published {id, title, url}.
	 *
	 * @param string  $new_status New status.
	 * @param string  $old_status Old status.
	 * @param WP_Post $post       Post.
	 */
	public static function on_post_status( $new_status, $old_status, $post ) {
		if ( 'publish' !== $new_status || 'publish' === $old_status || ! ( $post instanceof WP_Post ) ) {
			return;
		}
		if ( wp_is_post_revision( $post ) || wp_is_post_autosave( $post ) ) {
			return;
		}
		if ( ! in_array( $post->post_type, self::post_types(), true ) ) {
			return;
		}
		realtime_events_publish(
			'posts',
			'post_published',
			array(
				'id'    => (int) $post->ID,
				// The raw title: the client renders it with textContent, never as HTML.
				'title' => (string) $post->post_title,
				'url'   => (string) get_permalink( $post ),
			),
			array(
				'source' => 'post',
				'post'   => $post,
			)
		);
	}

	/**
	 * A comment moved to `approved` (moderation).
	 *
	 * @param string     $new_status New status.
	 * @param string     $old_status Old status.
	 * @param WP_Comment $comment    Comment.
	 */
	public static function on_comment_status( $new_status, $old_status, $comment ) {
		if ( 'approved' === $new_status && 'approved' !== $old_status ) {
			self::publish_comment( $comment );
		}
	}

	/**
	 * A comment inserted already approved (trusted authors, no moderation).
	 *
	 * @param int        $id      Comment id.
	 * @param WP_Comment $comment Comment.
	 */
	public static function on_comment_insert( $id, $comment ) {
		if ( $comment instanceof WP_Comment && '1' === (string) $comment->comment_approved ) {
			self::publish_comment( $comment );
		}
	}

	/**
	 * Publishes post.<ID> / comment_approved.
	 *
	 * @param WP_Comment $comment Comment.
	 */
	private static function publish_comment( $comment ) {
		if ( ! ( $comment instanceof WP_Comment ) ) {
			return;
		}
		$types = (array) apply_filters( 'realtime_events_comment_types', array( 'comment', '' ) );
		if ( ! in_array( (string) $comment->comment_type, $types, true ) ) {
			return;
		}
		$post = get_post( (int) $comment->comment_post_ID );
		if ( ! $post || 'publish' !== $post->post_status || '' !== (string) $post->post_password ) {
			return; // Only comments that anyone may read are broadcast.
		}
		realtime_events_publish(
			'post.' . (int) $post->ID,
			'comment_approved',
			array(
				'id'      => (int) $comment->comment_ID,
				'post_id' => (int) $post->ID,
				'title'   => (string) $post->post_title,
				'author'  => (string) $comment->comment_author,
				'message' => wp_html_excerpt( wp_strip_all_tags( (string) $comment->comment_content ), 200, '…' ),
				'url'     => (string) get_comment_link( $comment ),
			),
			array(
				'source'  => 'comment',
				'comment' => $comment,
			)
		);
	}
}
