<?php
/**
 * Built-in publishers: posts entering `publish`, approved comments.
 *
 * @package RealtimeEventsTest
 */

/**
 * Realtime_Events_Publishers.
 */
class PublishersTest extends RealtimeTestCase {

	/**
	 * Posts made by a test, deleted afterwards.
	 *
	 * @var int[]
	 */
	private $posts = array();

	protected function setUp(): void {
		parent::setUp();
		// An administrator (unfiltered_html): titles are stored raw, as in the editor.
		wp_set_current_user( get_user_by( 'login', 'admin' )->ID );
	}

	protected function tearDown(): void {
		wp_set_current_user( get_user_by( 'login', 'admin' )->ID );
		foreach ( $this->posts as $id ) {
			wp_delete_post( $id, true );
		}
		parent::tearDown();
	}

	private function post( array $args ) {
		$id = wp_insert_post( $args + array( 'post_content' => 'x' ), true );
		$this->assertIsInt( $id );
		$this->posts[] = $id;
		return $id;
	}

	private function events( $type = null ) {
		return array_values(
			array_filter(
				$this->rows(),
				function ( $r ) use ( $type ) {
					return null === $type || $r->type === $type;
				}
			)
		);
	}

	public function test_publishing_a_post_publishes_its_raw_title() {
		$title = 'Tom & Jerry <img src=x onerror="alert(1)"> "quoted" ünï';
		$id    = $this->post(
			array(
				'post_title'  => $title,
				'post_status' => 'publish',
			)
		);
		$events = $this->events( 'post_published' );
		$this->assertCount( 1, $events );
		$this->assertSame( 'posts', $events[0]->channel );
		$this->assertSame(
			array(
				'id'    => $id,
				'title' => $title,
				'url'   => get_permalink( $id ),
			),
			json_decode( $events[0]->payload, true )
		);

		// Updating a published post is not a new publication.
		wp_update_post(
			array(
				'ID'         => $id,
				'post_title' => 'Edited',
			)
		);
		$this->assertCount( 1, $this->events( 'post_published' ) );
	}

	public function test_draft_then_publish() {
		$id = $this->post(
			array(
				'post_title'  => 'Draft first',
				'post_status' => 'draft',
			)
		);
		$this->assertCount( 0, $this->events( 'post_published' ) );
		wp_publish_post( $id );
		$this->assertCount( 1, $this->events( 'post_published' ) );
	}

	public function test_scheduled_post_is_announced_when_cron_publishes_it() {
		$id = $this->post(
			array(
				'post_title'    => 'Scheduled',
				'post_status'   => 'future',
				'post_date'     => gmdate( 'Y-m-d H:i:s', time() + 3600 ),
				'post_date_gmt' => gmdate( 'Y-m-d H:i:s', time() + 3600 ),
			)
		);
		$this->assertSame( 'future', get_post_status( $id ) );
		$this->assertCount( 0, $this->events( 'post_published' ) );
		// What WP-Cron's publish_future_post does when the time comes.
		wp_publish_post( $id );
		$events = $this->events( 'post_published' );
		$this->assertCount( 1, $events );
		$this->assertSame( $id, json_decode( $events[0]->payload, true )['id'] );
	}

	public function test_post_types_are_filterable() {
		$this->post(
			array(
				'post_type'   => 'page',
				'post_title'  => 'A page',
				'post_status' => 'publish',
			)
		);
		$this->assertCount( 0, $this->events( 'post_published' ), 'pages are not announced by default' );
		$this->hook(
			'realtime_events_post_types',
			function ( $types ) {
				$types[] = 'page';
				return $types;
			}
		);
		$this->post(
			array(
				'post_type'   => 'page',
				'post_title'  => 'Another page',
				'post_status' => 'publish',
			)
		);
		$this->assertCount( 1, $this->events( 'post_published' ) );
	}

	public function test_the_filter_can_veto_built_in_events() {
		$this->hook(
			'realtime_events_before_publish',
			function ( $event, $context ) {
				return isset( $context['post'] ) && 'Hidden' === $context['post']->post_title ? false : $event;
			},
			10,
			2
		);
		$this->post(
			array(
				'post_title'  => 'Hidden',
				'post_status' => 'publish',
			)
		);
		$this->assertCount( 0, $this->events( 'post_published' ) );
	}

	public function test_approved_comments() {
		$post = $this->post(
			array(
				'post_title'  => 'Commented',
				'post_status' => 'publish',
			)
		);
		$approved = wp_insert_comment(
			array(
				'comment_post_ID'  => $post,
				'comment_author'   => 'Ann',
				'comment_content'  => 'First! <script>x</script>',
				'comment_approved' => 1,
				'comment_type'     => 'comment',
			)
		);
		$events = $this->events( 'comment_approved' );
		$this->assertCount( 1, $events );
		$this->assertSame( 'post.' . $post, $events[0]->channel );
		$payload = json_decode( $events[0]->payload, true );
		$this->assertSame( $approved, $payload['id'] );
		$this->assertSame( $post, $payload['post_id'] );
		$this->assertSame( 'Ann', $payload['author'] );

		$pending = wp_insert_comment(
			array(
				'comment_post_ID'  => $post,
				'comment_author'   => 'Bob',
				'comment_content'  => 'Held for moderation',
				'comment_approved' => 0,
				'comment_type'     => 'comment',
			)
		);
		$this->assertCount( 1, $this->events( 'comment_approved' ), 'a pending comment is not broadcast' );
		wp_set_comment_status( $pending, 'approve' );
		$events = $this->events( 'comment_approved' );
		$this->assertCount( 2, $events );
		$this->assertSame( $pending, json_decode( $events[1]->payload, true )['id'] );
	}
}
