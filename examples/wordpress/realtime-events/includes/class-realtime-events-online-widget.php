<?php
/**
 * The "Online now" dashboard widget.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Lists, per presence channel, the logged-in users the hub's webhooks reported as present
 * and how many anonymous visitors are with them. Shown to users who may list users
 * (filter realtime_events_online_widget_capability): it tells who reads what.
 */
class Realtime_Events_Online_Widget {

	const ID = 'realtime_events_online';

	/**
	 * Hooks.
	 */
	public static function register() {
		add_action( 'wp_dashboard_setup', array( __CLASS__, 'setup' ) );
	}

	/**
	 * Capability needed to see the widget.
	 *
	 * @return string
	 */
	public static function capability() {
		/**
		 * Filters the capability needed to see the "Online now" dashboard widget.
		 *
		 * @param string $capability Default "list_users".
		 */
		return (string) apply_filters( 'realtime_events_online_widget_capability', 'list_users' );
	}

	/**
	 * Adds the widget.
	 */
	public static function setup() {
		if ( current_user_can( self::capability() ) ) {
			wp_add_dashboard_widget( self::ID, __( 'Online now', 'realtime-events' ), array( __CLASS__, 'render' ) );
		}
	}

	/**
	 * A channel's label: the post's title for presence-post.<ID> (when the viewer may read
	 * the post), else the channel name.
	 *
	 * @param string $channel Channel.
	 * @return array{text:string,url:string}
	 */
	public static function label( $channel ) {
		$post_id = Realtime_Events_Presence::post_id_of( $channel );
		$post    = $post_id ? get_post( $post_id ) : null;
		if ( $post && current_user_can( 'read_post', $post->ID ) ) {
			$title = get_the_title( $post );
			return array(
				'text' => '' !== $title ? wp_strip_all_tags( $title ) : $channel,
				'url'  => (string) get_permalink( $post ),
			);
		}
		return array(
			'text' => $channel,
			'url'  => '',
		);
	}

	/**
	 * Prints the widget.
	 */
	public static function render() {
		$channels = Realtime_Events_Online::channels();
		$status   = Realtime_Events_Webhook::status();
		echo '<div id="realtime-events-online">';
		if ( ! $channels ) {
			echo '<p class="realtime-events-online-empty">' . esc_html__( 'Nobody is on a presence channel right now.', 'realtime-events' ) . '</p>';
		} else {
			echo '<ul class="realtime-events-online-channels">';
			foreach ( $channels as $channel => $group ) {
				self::render_channel( $channel, $group );
			}
			echo '</ul>';
		}
		echo '<p class="realtime-events-online-status description">';
		if ( $status['last_ok'] ) {
			/* translators: %s: relative time such as "3 mins". */
			echo esc_html( sprintf( __( 'Last webhook from the hub: %s ago.', 'realtime-events' ), human_time_diff( (int) $status['last_ok']['time'] ) ) );
		} else {
			echo esc_html__( 'No webhook has arrived from the hub yet.', 'realtime-events' ) . ' ';
			if ( current_user_can( Realtime_Events_Admin::CAPABILITY ) ) {
				echo '<a href="' . esc_url( admin_url( 'options-general.php?page=' . Realtime_Events_Admin::PAGE . '#realtime-events-webhook' ) ) . '">' . esc_html__( 'How to set it up', 'realtime-events' ) . '</a>';
			}
		}
		echo '</p></div>';
	}

	/**
	 * One channel: its label, its users, its anonymous count.
	 *
	 * @param string $channel Channel.
	 * @param array  $group   {users, anonymous}.
	 */
	private static function render_channel( $channel, array $group ) {
		$label = self::label( $channel );
		echo '<li class="realtime-events-online-channel" data-channel="' . esc_attr( $channel ) . '"><strong>';
		if ( '' !== $label['url'] ) {
			echo '<a href="' . esc_url( $label['url'] ) . '">' . esc_html( $label['text'] ) . '</a>';
		} else {
			echo esc_html( $label['text'] );
		}
		echo '</strong> <span class="count">(' . esc_html( number_format_i18n( count( $group['users'] ) + $group['anonymous'] ) ) . ')</span>';
		if ( $group['users'] ) {
			echo '<ul class="realtime-events-online-members">';
			foreach ( $group['users'] as $id ) {
				$user = ctype_digit( $id ) ? get_userdata( (int) $id ) : false;
				echo '<li class="realtime-events-online-member" data-user-id="' . esc_attr( $id ) . '">';
				if ( $user ) {
					echo get_avatar( $user->ID, 20, '', '', array( 'class' => 'realtime-events-online-avatar' ) ) . ' '; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- core builds and escapes the <img>.
					if ( current_user_can( 'edit_user', $user->ID ) ) {
						echo '<a class="realtime-events-online-name" href="' . esc_url( get_edit_user_link( $user->ID ) ) . '">' . esc_html( $user->display_name ) . '</a>';
					} else {
						echo '<span class="realtime-events-online-name">' . esc_html( $user->display_name ) . '</span>';
					}
				} else {
					/* translators: %s: member id reported by the hub. */
					echo '<span class="realtime-events-online-name">' . esc_html( sprintf( __( 'user %s', 'realtime-events' ), $id ) ) . '</span>';
				}
				echo '</li>';
			}
			echo '</ul>';
		}
		if ( $group['anonymous'] ) {
			echo '<span class="realtime-events-online-anonymous">' . esc_html(
				sprintf(
					/* translators: %s: number of anonymous visitors. */
					_n( '%s anonymous visitor', '%s anonymous visitors', $group['anonymous'], 'realtime-events' ),
					number_format_i18n( $group['anonymous'] )
				)
			) . '</span>';
		}
		echo '</li>';
	}
}
