<?php
/**
 * Who is online, as webhooks tell it, and the "Online now" dashboard widget.
 *
 * @package RealtimeEventsTest
 */

require_once ABSPATH . 'wp-admin/includes/template.php';
require_once ABSPATH . 'wp-admin/includes/class-wp-screen.php';
require_once ABSPATH . 'wp-admin/includes/screen.php';
require_once ABSPATH . 'wp-admin/includes/dashboard.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-admin.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-online-widget.php';

/**
 * Realtime_Events_Online, Realtime_Events_Online_Widget.
 */
class OnlineTest extends RealtimeTestCase {

	/**
	 * Batch time of the next delivery (ms).
	 *
	 * @var int
	 */
	private $time_ms;

	protected function setUp(): void {
		parent::setUp();
		global $wpdb;
		$wpdb->query( 'TRUNCATE TABLE ' . Realtime_Events_Webhook::table() ); // phpcs:ignore
		$wpdb->query( 'TRUNCATE TABLE ' . Realtime_Events_Online::table() ); // phpcs:ignore
		delete_option( Realtime_Events_Webhook::STATUS_OPTION );
		$this->time_ms = Realtime_Events_Online::now_ms() - 60000;
	}

	/**
	 * Delivers events through the receiver, as the hub does.
	 *
	 * @param array    $events  [name, channel, user] triples.
	 * @param int|null $time_ms Batch time; default: 1 s after the previous batch.
	 */
	private function deliver( array $events, $time_ms = null ) {
		$this->time_ms = null === $time_ms ? $this->time_ms + 1000 : $time_ms;
		$list          = array();
		foreach ( $events as $e ) {
			$list[] = array(
				'name'    => $e[0],
				'channel' => $e[1],
				'user_id' => isset( $e[2] ) ? $e[2] : null,
				'id'      => wp_generate_uuid4(),
			);
		}
		$body   = wp_json_encode(
			array(
				'time_ms' => $this->time_ms,
				'events'  => $list,
			)
		);
		$answer = Realtime_Events_Webhook::receive( $body, Realtime_Events_Signer::header_value( $body, REALTIME_EVENTS_WEBHOOK_SECRET ), 'application/json' );
		$this->assertSame( 200, $answer['status'], wp_json_encode( $answer ) );
		return $body;
	}

	private function users_in( $channel ) {
		$all = Realtime_Events_Online::channels();
		return isset( $all[ $channel ] ) ? $all[ $channel ]['users'] : null;
	}

	public function test_members_come_and_go() {
		$anon = Realtime_Events_Presence::new_anonymous_id();
		$this->deliver(
			array(
				array( 'channel_occupied', 'presence-post.7' ),
				array( 'member_added', 'presence-post.7', '42' ),
				array( 'member_added', 'presence-post.7', $anon ),
				array( 'member_added', 'presence-post.8', '42' ),
				array( 'member_added', 'presence-post.7', '43' ),
			)
		);
		$all = Realtime_Events_Online::channels();
		$this->assertSame( array( 'presence-post.7', 'presence-post.8' ), array_keys( $all ) );
		$this->assertSame( array( '42', '43' ), $all['presence-post.7']['users'] );
		$this->assertSame( 1, $all['presence-post.7']['anonymous'], 'anonymous visitors are counted, not listed' );
		$this->assertSame( $this->time_ms, $all['presence-post.7']['since'] );
		$this->assertSame( $all, realtime_events_online() );

		$this->deliver( array( array( 'member_removed', 'presence-post.7', '42' ) ) );
		$this->assertSame( array( '43' ), $this->users_in( 'presence-post.7' ) );
		$this->assertSame( array( '42' ), $this->users_in( 'presence-post.8' ), 'one channel at a time' );

		$this->deliver( array( array( 'member_removed', 'presence-post.7', $anon ), array( 'member_removed', 'presence-post.7', '43' ), array( 'channel_vacated', 'presence-post.7' ) ) );
		$this->assertNull( $this->users_in( 'presence-post.7' ) );

		// A vacated channel forgets members whose removal got lost.
		$this->deliver( array( array( 'channel_vacated', 'presence-post.8' ) ) );
		$this->assertSame( array(), Realtime_Events_Online::channels() );
	}

	public function test_a_late_retry_never_overrides_a_newer_event() {
		$base = $this->time_ms;
		$this->deliver( array( array( 'member_added', 'presence-post.7', '42' ) ), $base + 1000 );
		$this->deliver( array( array( 'member_removed', 'presence-post.7', '42' ) ), $base + 2000 );
		// The first "added" is delivered again (at least once), with its own older batch time.
		$this->deliver( array( array( 'member_added', 'presence-post.7', '42' ) ), $base + 1000 );
		$this->assertNull( $this->users_in( 'presence-post.7' ), 'the removal is newer' );

		// A removal that arrives before the "added" it follows.
		$this->deliver( array( array( 'member_removed', 'presence-post.9', '5' ) ), $base + 5000 );
		$this->deliver( array( array( 'member_added', 'presence-post.9', '5' ) ), $base + 4000 );
		$this->assertNull( $this->users_in( 'presence-post.9' ) );

		// One batch: in order (a quick leave and return is present).
		$this->deliver( array( array( 'member_removed', 'presence-post.7', '42' ), array( 'member_added', 'presence-post.7', '42' ) ), $base + 10000 );
		$this->assertSame( array( '42' ), $this->users_in( 'presence-post.7' ) );
		// A vacated from before that return does not remove it.
		$this->deliver( array( array( 'channel_vacated', 'presence-post.7' ) ), $base + 9000 );
		$this->assertSame( array( '42' ), $this->users_in( 'presence-post.7' ) );
	}

	public function test_stale_rows_expire_and_are_pruned() {
		global $wpdb;
		$now = Realtime_Events_Online::now_ms();
		Realtime_Events_Online::set( 'presence-post.1', '1', true, $now - ( Realtime_Events_Online::TTL + 10 ) * 1000 );
		Realtime_Events_Online::set( 'presence-post.1', '2', true, $now - 1000 );
		Realtime_Events_Online::set( 'presence-post.1', '3', false, $now - ( Realtime_Events_Online::KEEP_GONE + 10 ) * 1000 );
		Realtime_Events_Online::set( 'presence-post.1', '4', false, $now - 1000 );
		$this->assertSame( array( '2' ), $this->users_in( 'presence-post.1' ), 'a member nobody removed is forgotten after a day' );
		Realtime_Events_Online::prune( $now );
		$this->assertSame( array( '2', '4' ), $wpdb->get_col( 'SELECT user_id FROM ' . Realtime_Events_Online::table() . ' ORDER BY user_id' ) ); // phpcs:ignore

		$this->hook(
			'realtime_events_online_ttl',
			function () {
				return 60;
			}
		);
		Realtime_Events_Online::set( 'presence-post.1', '5', true, $now - 61000 );
		$this->assertSame( array( '2' ), $this->users_in( 'presence-post.1' ) );
	}

	public function test_widget() {
		$admin  = get_user_by( 'login', 'admin' );
		$reader = get_user_by( 'login', 'reader' );
		$page   = wp_insert_post(
			array(
				'post_type'   => 'page',
				'post_status' => 'publish',
				'post_title'  => 'Widget <b>test</b> page',
			)
		);
		try {
			wp_set_current_user( $admin->ID );
			$out = $this->widget();
			$this->assertStringContainsString( 'Nobody is on a presence channel right now.', $out );
			$this->assertStringContainsString( 'No webhook has arrived from the hub yet.', $out );
			$this->assertStringContainsString( 'options-general.php?page=realtime-events#realtime-events-webhook', $out );

			$this->deliver(
				array(
					array( 'member_added', 'presence-post.' . $page, (string) $reader->ID ),
					array( 'member_added', 'presence-post.' . $page, Realtime_Events_Presence::new_anonymous_id() ),
					array( 'member_added', 'presence-post.' . $page, Realtime_Events_Presence::new_anonymous_id() ),
					array( 'member_added', 'presence-room.1', '<script>x</script>' ),
				)
			);
			$out = $this->widget();
			$this->assertStringContainsString( 'data-channel="presence-post.' . $page . '"', $out );
			$this->assertStringContainsString( '>Widget test page</a>', $out, 'the post title, as text' );
			$this->assertStringContainsString( 'data-user-id="' . $reader->ID . '"', $out );
			$this->assertStringContainsString( '>' . esc_html( $reader->display_name ) . '</a>', $out );
			$this->assertStringContainsString( '2 anonymous visitors', $out );
			$this->assertStringContainsString( '(3)', $out );
			$this->assertStringContainsString( '<strong>presence-room.1</strong>', $out, 'other channels by name' );
			$this->assertStringContainsString( 'user &lt;script&gt;x&lt;/script&gt;', $out, 'unknown member ids as text' );
			$this->assertStringNotContainsString( '<script>x', $out );
			$this->assertStringContainsString( 'Last webhook from the hub:', $out );

			// Only for those who may list users.
			global $wp_meta_boxes;
			$wp_meta_boxes = array(); // phpcs:ignore WordPress.WP.GlobalVariablesOverride
			set_current_screen( 'dashboard' );
			Realtime_Events_Online_Widget::setup();
			$this->assertNotEmpty( $wp_meta_boxes['dashboard']['normal']['core'][ Realtime_Events_Online_Widget::ID ] );
			$wp_meta_boxes = array(); // phpcs:ignore WordPress.WP.GlobalVariablesOverride
			wp_set_current_user( $reader->ID );
			Realtime_Events_Online_Widget::setup();
			$this->assertEmpty( $wp_meta_boxes );
		} finally {
			wp_delete_post( $page, true );
			$GLOBALS['current_screen'] = null; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		}
	}

	private function widget() {
		ob_start();
		Realtime_Events_Online_Widget::render();
		return ob_get_clean();
	}
}
