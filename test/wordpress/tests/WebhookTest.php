<?php
/**
 * The webhook receiver: signature, staleness, duplicates, actions, the REST route.
 *
 * @package RealtimeEventsTest
 */

/**
 * Realtime_Events_Webhook.
 */
class WebhookTest extends RealtimeTestCase {

	/**
	 * Actions seen: [hook, event, time_ms].
	 *
	 * @var array
	 */
	private $fired = array();

	protected function setUp(): void {
		parent::setUp();
		global $wpdb;
		$wpdb->query( 'TRUNCATE TABLE ' . Realtime_Events_Webhook::table() ); // phpcs:ignore
		$wpdb->query( 'TRUNCATE TABLE ' . Realtime_Events_Online::table() ); // phpcs:ignore
		delete_option( Realtime_Events_Webhook::STATUS_OPTION );
		$this->fired = array();
		foreach ( array( 'realtime_events_webhook', 'realtime_events_webhook_member_added', 'realtime_events_webhook_member_removed', 'realtime_events_webhook_client_event' ) as $hook ) {
			$this->hook(
				$hook,
				function ( $event, $time_ms ) use ( $hook ) {
					$this->fired[] = array( $hook, $event, $time_ms );
				},
				10,
				2
			);
		}
	}

	private static function body( array $events, $time_ms = 1733300000000 ) {
		return wp_json_encode(
			array(
				'time_ms' => $time_ms,
				'events'  => $events,
			),
			JSON_UNESCAPED_SLASHES
		);
	}

	private static function sign( $body, $time = null, $secret = REALTIME_EVENTS_WEBHOOK_SECRET ) {
		return Realtime_Events_Signer::header_value( $body, $secret, $time );
	}

	private static function member( $name, $user, $id, $channel = 'presence-post.7' ) {
		return array(
			'name'    => $name,
			'channel' => $channel,
			'user_id' => $user,
			'id'      => $id,
		);
	}

	private function hooks_fired() {
		return array_map(
			function ( $f ) {
				return $f[0] . ':' . ( isset( $f[1]['id'] ) ? $f[1]['id'] : '' );
			},
			$this->fired
		);
	}

	public function test_which_secret_verifies_webhooks() {
		$this->assertSame( 'w', Realtime_Events_Config::pick_webhook_secret( 'w', 'p' ) );
		$this->assertSame( 'p', Realtime_Events_Config::pick_webhook_secret( null, 'p' ), 'undefined: the publish secret' );
		$this->assertSame( 'p', Realtime_Events_Config::pick_webhook_secret( '', 'p' ), 'empty: the publish secret' );
		$this->assertSame( '', Realtime_Events_Config::pick_webhook_secret( null, '' ) );
		$this->assertSame( REALTIME_EVENTS_WEBHOOK_SECRET, Realtime_Events_Config::webhook_secret() );
		$this->assertSame( 'REALTIME_EVENTS_WEBHOOK_SECRET', Realtime_Events_Config::webhook_secret_source() );
	}

	public function test_verify() {
		$body = self::body( array() );
		$now  = 1733300000;
		$key  = 'k3y';
		$this->assertTrue( Realtime_Events_Webhook::verify( self::sign( $body, $now, $key ), $body, $key, $now ) );
		$this->assertTrue( Realtime_Events_Webhook::verify( self::sign( $body, $now - 300, $key ), $body, $key, $now ), 'within the tolerance' );
		$this->assertTrue( Realtime_Events_Webhook::verify( 't=' . $now . ',v1=00,v1=' . Realtime_Events_Signer::mac( $now, $body, $key ), $body, $key, $now ), 'any v1 may match (rotation)' );

		$cases = array(
			'wrong secret'          => array( self::sign( $body, $now, 'other' ), $body, $key, 'realtime_events_webhook_bad_signature' ),
			'body changed'          => array( self::sign( $body, $now, $key ), $body . ' ', $key, 'realtime_events_webhook_bad_signature' ),
			'time changed'          => array( 't=' . ( $now + 1 ) . ',v1=' . Realtime_Events_Signer::mac( $now, $body, $key ), $body, $key, 'realtime_events_webhook_bad_signature' ),
			'replayed 301 s later'  => array( self::sign( $body, $now - 301, $key ), $body, $key, 'realtime_events_webhook_stale' ),
			'301 s in the future'   => array( self::sign( $body, $now + 301, $key ), $body, $key, 'realtime_events_webhook_stale' ),
			'no header'             => array( '', $body, $key, 'realtime_events_webhook_unsigned' ),
			'no v1'                 => array( 't=' . $now, $body, $key, 'realtime_events_webhook_unsigned' ),
			'bearer, not signature' => array( 'Bearer ' . $key, $body, $key, 'realtime_events_webhook_unsigned' ),
			'no secret configured'  => array( self::sign( $body, $now, '' ), $body, '', 'realtime_events_webhook_not_configured' ),
		);
		foreach ( $cases as $what => $case ) {
			$result = Realtime_Events_Webhook::verify( $case[0], $case[1], $case[2], $now );
			$this->assertInstanceOf( 'WP_Error', $result, $what );
			$this->assertSame( $case[3], $result->get_error_code(), $what );
		}

		$this->hook(
			'realtime_events_webhook_tolerance',
			function () {
				return 10;
			}
		);
		$this->assertSame( 'realtime_events_webhook_stale', Realtime_Events_Webhook::verify( self::sign( $body, $now - 11, $key ), $body, $key, $now )->get_error_code() );
	}

	public function test_events_fire_actions_once_per_id() {
		$body   = self::body(
			array(
				self::member( 'member_added', '42', 'e-1' ),
				self::member( 'member_removed', '42', 'e-2' ),
				array(
					'name'    => 'channel_vacated',
					'channel' => 'presence-post.7',
					'id'      => 'e-3',
				),
			)
		);
		$answer = Realtime_Events_Webhook::receive( $body, self::sign( $body ), 'application/json' );
		$this->assertSame( 200, $answer['status'], wp_json_encode( $answer ) );
		$this->assertSame(
			array(
				'status'     => 'ok',
				'received'   => 3,
				'processed'  => 3,
				'duplicates' => 0,
				'ignored'    => 0,
			),
			$answer['body']
		);
		$this->assertSame(
			array(
				'realtime_events_webhook:e-1',
				'realtime_events_webhook_member_added:e-1',
				'realtime_events_webhook:e-2',
				'realtime_events_webhook_member_removed:e-2',
				'realtime_events_webhook:e-3',
			),
			$this->hooks_fired(),
			'the generic action, then the named one, per event in order'
		);
		$this->assertSame( self::member( 'member_added', '42', 'e-1' ), $this->fired[0][1], 'the event as the hub sent it' );
		$this->assertSame( 1733300000000, $this->fired[0][2], 'and the batch time' );

		// At least once: the hub sends the batch again (signed again, a second later).
		$this->fired = array();
		$again       = Realtime_Events_Webhook::receive( $body, self::sign( $body, time() + 1 ), 'application/json' );
		$this->assertSame( 200, $again['status'] );
		$this->assertSame( 3, $again['body']['duplicates'] );
		$this->assertSame( array(), $this->fired, 'duplicates fire nothing' );

		// A batch mixing an old and a new event.
		$mixed = self::body( array( self::member( 'member_added', '42', 'e-1' ), self::member( 'member_added', '43', 'e-4' ) ) );
		$answer = Realtime_Events_Webhook::receive( $mixed, self::sign( $mixed ), 'application/json; charset=utf-8' );
		$this->assertSame( 1, $answer['body']['duplicates'] );
		$this->assertSame( 1, $answer['body']['processed'] );
		$this->assertSame( array( 'realtime_events_webhook:e-4', 'realtime_events_webhook_member_added:e-4' ), $this->hooks_fired() );

		$status = Realtime_Events_Webhook::status();
		$this->assertSame( 3, $status['deliveries'] );
		$this->assertSame( 2, $status['last_ok']['events'] );
		$this->assertNull( $status['last_error'] );
	}

	public function test_refusals_fire_nothing_and_are_recorded() {
		$body  = self::body( array( self::member( 'member_added', '42', 'r-1' ) ) );
		$cases = array(
			array( 401, self::sign( $body, null, 'wrong' ), $body, 'application/json', 'realtime_events_webhook_bad_signature' ),
			array( 401, self::sign( $body, time() - 3600 ), $body, 'application/json', 'realtime_events_webhook_stale' ),
			array( 401, '', $body, 'application/json', 'realtime_events_webhook_unsigned' ),
			array( 415, self::sign( $body ), $body, 'text/plain', 'realtime_events_webhook_content_type' ),
			array( 400, self::sign( '{"events":7}' ), '{"events":7}', 'application/json', 'realtime_events_webhook_bad_body' ),
			array( 400, self::sign( 'nope' ), 'nope', 'application/json', 'realtime_events_webhook_bad_body' ),
			array( 413, self::sign( str_repeat( ' ', Realtime_Events_Webhook::MAX_BODY + 1 ) ), str_repeat( ' ', Realtime_Events_Webhook::MAX_BODY + 1 ), 'application/json', 'realtime_events_webhook_too_large' ),
		);
		foreach ( $cases as $case ) {
			$answer = Realtime_Events_Webhook::receive( $case[2], $case[1], $case[3] );
			$this->assertSame( $case[0], $answer['status'], $case[4] );
			$this->assertSame( $case[4], $answer['body']['code'] );
			$this->assertSame( $case[4], Realtime_Events_Webhook::status()['last_error']['code'] );
		}
		$this->assertSame( array(), $this->fired );
		$this->assertSame( 0, Realtime_Events_Webhook::status()['deliveries'] );

		// A refused request did not mark its event as seen.
		$answer = Realtime_Events_Webhook::receive( $body, self::sign( $body ), 'application/json' );
		$this->assertSame( 1, $answer['body']['processed'] );
	}

	public function test_malformed_events_are_skipped() {
		$body   = self::body(
			array(
				array( 'name' => 'Member-Added' ),
				array( 'name' => '../x' ),
				array( 'channel' => 'c' ),
				'member_added',
				array(
					'name' => 'member_added',
					'id'   => str_repeat( 'x', 129 ),
				),
				array( 'name' => 'client_event' ), // no id: passed on, nothing to deduplicate by
			)
		);
		$answer = Realtime_Events_Webhook::receive( $body, self::sign( $body ), 'application/json' );
		$this->assertSame( 200, $answer['status'] );
		$this->assertSame( 5, $answer['body']['ignored'] );
		$this->assertSame( 1, $answer['body']['processed'] );
		$this->assertSame( array( 'realtime_events_webhook:', 'realtime_events_webhook_client_event:' ), $this->hooks_fired() );
	}

	public function test_a_failing_handler_gets_the_event_again() {
		$fail = true;
		$this->hook(
			'realtime_events_webhook_member_added',
			function ( $event ) use ( &$fail ) {
				if ( $fail && 'f-2' === $event['id'] ) {
					throw new RuntimeException( 'database away' );
				}
			},
			20
		);
		$body   = self::body( array( self::member( 'member_added', '1', 'f-1' ), self::member( 'member_added', '2', 'f-2' ), self::member( 'member_added', '3', 'f-3' ) ) );
		$answer = Realtime_Events_Webhook::receive( $body, self::sign( $body ), 'application/json' );
		$this->assertSame( 500, $answer['status'], 'the hub retries' );
		$this->assertStringContainsString( 'database away', $answer['body']['message'] );
		$this->assertSame( 1, $answer['body']['processed'] );

		$fail        = false;
		$this->fired = array();
		$answer      = Realtime_Events_Webhook::receive( $body, self::sign( $body ), 'application/json' );
		$this->assertSame( 200, $answer['status'] );
		$this->assertSame( 1, $answer['body']['duplicates'], 'f-1 was done' );
		$this->assertSame( 2, $answer['body']['processed'], 'f-2 (failed) and f-3 (never reached) run now' );
		$this->assertContains( 'realtime_events_webhook_member_added:f-2', $this->hooks_fired() );
		$this->assertContains( 'realtime_events_webhook_member_added:f-3', $this->hooks_fired() );
	}

	public function test_ids_are_kept_for_a_bounded_time() {
		global $wpdb;
		$now = time();
		$this->assertTrue( Realtime_Events_Webhook::claim( 'old', $now - Realtime_Events_Webhook::KEEP_IDS - 1 ) );
		$this->assertTrue( Realtime_Events_Webhook::claim( 'recent', $now - 60 ) );
		$this->assertFalse( Realtime_Events_Webhook::claim( 'recent', $now ) );
		Realtime_Events_Webhook::prune( $now );
		$this->assertSame( array( 'recent' ), $wpdb->get_col( 'SELECT event_id FROM ' . Realtime_Events_Webhook::table() ) ); // phpcs:ignore
		$this->assertTrue( Realtime_Events_Webhook::claim( 'old', $now ), 'forgotten after the window' );
	}

	public function test_rest_route() {
		$routes = rest_get_server()->get_routes();
		$this->assertArrayHasKey( '/realtime-events/v1/webhook', $routes );
		$this->assertSame( rest_url( 'realtime-events/v1/webhook' ), Realtime_Events_Webhook::url() );

		$body    = self::body( array( self::member( 'member_added', '42', 'rest-1' ) ) );
		$request = new WP_REST_Request( 'POST', '/realtime-events/v1/webhook' );
		$request->set_header( 'Content-Type', 'application/json' );
		$request->set_header( 'X-Realtime-Signature', self::sign( $body ) );
		$request->set_body( $body );
		$response = rest_do_request( $request );
		$this->assertSame( 200, $response->get_status() );
		$this->assertSame( 1, $response->get_data()['processed'] );
		$this->assertSame( 'no-store', $response->get_headers()['Cache-Control'] );

		$request->set_header( 'X-Realtime-Signature', self::sign( $body, null, 'wrong' ) );
		$response = rest_do_request( $request );
		$this->assertSame( 401, $response->get_status() );
		$this->assertSame( 'realtime_events_webhook_bad_signature', $response->get_data()['code'] );

		$get = rest_do_request( new WP_REST_Request( 'GET', '/realtime-events/v1/webhook' ) );
		$this->assertSame( 404, $get->get_status(), 'POST only' );
	}
}
