<?php
/**
 * The outbox: storage, claiming, delivery, retry.
 *
 * @package RealtimeEventsTest
 */

/**
 * Realtime_Events_Outbox against the real MariaDB.
 */
class OutboxTest extends RealtimeTestCase {

	const UUID = '/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/';

	public function test_table_is_created_by_dbdelta() {
		global $wpdb;
		$table   = Realtime_Events_Outbox::table();
		$columns = $wpdb->get_col( "SHOW COLUMNS FROM {$table}" ); // phpcs:ignore
		foreach ( array( 'id', 'event_id', 'channel', 'type', 'payload', 'created_at', 'attempts', 'next_attempt_at', 'claim_id', 'claim_expires', 'last_error' ) as $c ) {
			$this->assertContains( $c, $columns );
		}
		$unique = $wpdb->get_results( "SHOW INDEX FROM {$table} WHERE Key_name = 'event_id'" ); // phpcs:ignore
		$this->assertSame( '0', (string) $unique[0]->Non_unique );
		$this->assertSame( Realtime_Events_Outbox::DB_VERSION, get_option( Realtime_Events_Outbox::DB_OPTION ) );

		// Running the installer again is harmless (dbDelta diffs).
		Realtime_Events_Outbox::install();
		$this->assertSame( $columns, $wpdb->get_col( "SHOW COLUMNS FROM {$table}" ) ); // phpcs:ignore
	}

	public function test_publish_writes_a_row_with_a_uuid() {
		$id = realtime_events_publish( 'posts', 'post_published', array( 'id' => 7, 'title' => 'Hi' ) );
		$this->assertMatchesRegularExpression( self::UUID, $id );
		$rows = $this->rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( $id, $rows[0]->event_id );
		$this->assertSame( 'posts', $rows[0]->channel );
		$this->assertSame( 'post_published', $rows[0]->type );
		$this->assertSame( array( 'id' => 7, 'title' => 'Hi' ), json_decode( $rows[0]->payload, true ) );
		$this->assertSame( '0', (string) $rows[0]->attempts );
		$this->assertLessThanOrEqual( time(), (int) $rows[0]->next_attempt_at );
		$this->assertContains( $id, Realtime_Events_Plugin::instance()->queued_ids(), 'sent at shutdown of this request' );

		$other = realtime_events_publish( 'posts', 'post_published' );
		$this->assertNotSame( $id, $other );
		$this->assertNull( $this->rows()[1]->payload, 'no payload is stored as NULL and not sent' );
		$this->assertArrayNotHasKey( 'payload', Realtime_Events_Outbox::event_from_row( $this->rows()[1] ) );
	}

	public function test_invalid_events_are_refused() {
		foreach ( array( '', 'has space', str_repeat( 'a', 129 ), 'ünïcode', 'a/b' ) as $channel ) {
			$this->assertWPError( realtime_events_publish( $channel, 't' ), "channel '$channel'" );
		}
		foreach ( array( '', 'realtime:welcome', str_repeat( 't', 65 ) ) as $type ) {
			$this->assertWPError( realtime_events_publish( 'c', $type ), "type '$type'" );
		}
		$this->assertWPError( realtime_events_publish( 'c', 't', array( 'x' => str_repeat( 'x', 70000 ) ) ) );
		$this->assertCount( 0, $this->rows() );
		$this->assertNotWPError( realtime_events_publish( 'private-user.1:a@b=c_d-e', str_repeat( 'é', 64 ) ) );
	}

	public function test_filter_can_change_or_veto() {
		$this->hook(
			'realtime_events_before_publish',
			function ( $event, $context ) {
				if ( 'secret' === $event['type'] ) {
					return false;
				}
				$event['channel']            = 'changed';
				$event['payload']['context'] = isset( $context['source'] ) ? $context['source'] : '';
				return $event;
			},
			10,
			2
		);
		$this->assertFalse( realtime_events_publish( 'c', 'secret', array() ) );
		$id   = realtime_events_publish( 'c', 'shown', array( 'a' => 1 ), array( 'source' => 'unit' ) );
		$rows = $this->rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( $id, $rows[0]->event_id );
		$this->assertSame( 'changed', $rows[0]->channel );
		$this->assertSame( array( 'a' => 1, 'context' => 'unit' ), json_decode( $rows[0]->payload, true ) );
	}

	public function test_success_deletes_rows_and_fires_the_delivered_action() {
		$this->fake_hub(
			function ( $url, $args ) {
				return array( 200, self::success_for( $args['body'] ) );
			}
		);
		$delivered = array();
		$this->hook(
			'realtime_events_delivered',
			function ( $event, $result ) use ( &$delivered ) {
				$delivered[] = array( $event, $result );
			},
			10,
			2
		);
		$a = realtime_events_publish( 'posts', 'one', array( 'title' => 'A' ) );
		$b = realtime_events_publish( 'news', 'two' );

		$stats = Realtime_Events_Outbox::drain( 5, 'test' );
		$this->assertSame( 2, $stats['sent'] );
		$this->assertSame( 0, $stats['failed'] );
		$this->assertCount( 0, $this->rows() );
		$this->assertCount( 1, $this->requests, 'one batch request' );

		$body = json_decode( $this->requests[0][1]['body'], true );
		$this->assertSame( array( $a, $b ), array_column( $body, 'id' ), 'the UUID is the idempotency key, in order' );
		$this->assertSame( array( 'id', 'channel', 'type', 'timestamp', 'payload' ), array_keys( $body[0] ) );
		$this->assertMatchesRegularExpression( '/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/', $body[0]['timestamp'] );

		$this->assertCount( 2, $delivered );
		$this->assertSame( $a, $delivered[0][0]['id'] );
		$this->assertSame( 'c0', $delivered[0][1]['cursor'] );
		$this->assertGreaterThan( 0, (int) get_option( Realtime_Events_Outbox::OK_OPTION ) );
	}

	public function test_payload_json_is_sent_as_stored() {
		$this->fake_hub(
			function ( $url, $args ) {
				return array( 200, self::success_for( $args['body'] ) );
			}
		);
		realtime_events_publish( 'c', 'empty_object', new stdClass() );
		realtime_events_publish( 'c', 'scalar', 'just text' );
		realtime_events_publish( 'c', 'nested', array( 'list' => array(), 'map' => array( 'k' => 'é/"<' ), 'n' => 12345678901234 ) );
		Realtime_Events_Outbox::drain( 5, 'test' );
		$body = $this->requests[0][1]['body'];
		$this->assertStringContainsString( '"type":"empty_object","timestamp":', $body );
		$this->assertStringContainsString( ',"payload":{}}', $body, '{} stays an object' );
		$this->assertStringContainsString( ',"payload":"just text"}', $body );
		$this->assertStringContainsString( '"payload":{"list":[],"map":{"k":"é/\\"<"},"n":12345678901234}', $body );
		$this->assertIsArray( json_decode( $body, true ) );
	}

	/**
	 * Anything but 200 + the hub's JSON keeps the row, with a backoff.
	 *
	 * @dataProvider failures
	 */
	public function test_rows_stay_unless_the_hub_said_200( $code, $body, $needle ) {
		$this->fake_hub(
			function () use ( $code, $body ) {
				return null === $code ? new WP_Error( 'http_request_failed', 'cURL error 7: Failed to connect' ) : array( $code, $body );
			}
		);
		$failed = 0;
		$this->hook(
			'realtime_events_delivery_failed',
			function () use ( &$failed ) {
				$failed++;
			}
		);
		$id     = realtime_events_publish( 'c', 't', array( 'n' => 1 ) );
		$before = time();
		$stats  = Realtime_Events_Outbox::drain( 5, 'test' );
		$after  = time();

		$this->assertSame( 0, $stats['sent'] );
		$rows = $this->rows();
		$this->assertCount( 1, $rows, 'the event is still in the outbox' );
		$this->assertSame( $id, $rows[0]->event_id );
		$this->assertSame( '1', (string) $rows[0]->attempts );
		$this->assertSame( '', $rows[0]->claim_id, 'claim released' );
		$this->assertGreaterThanOrEqual( $before + 7, (int) $rows[0]->next_attempt_at, 'first retry after about 10 s' );
		$this->assertLessThanOrEqual( $after + 13, (int) $rows[0]->next_attempt_at );
		$this->assertStringContainsString( $needle, $rows[0]->last_error );
		$error = get_option( Realtime_Events_Outbox::ERROR_OPTION );
		$this->assertStringContainsString( $needle, $error['message'] );
		$this->assertSame( 1, $failed );

		// Not due yet: a second drain sends nothing.
		$count = count( $this->requests );
		Realtime_Events_Outbox::drain( 5, 'test' );
		$this->assertCount( $count, $this->requests );
	}

	public function failures() {
		return array(
			'connection refused'   => array( null, '', 'Failed to connect' ),
			'200 from a web page'  => array( 200, '<html>WordPress</html>', 'HTTP 200' ),
			'202'                  => array( 202, '{"status":"success"}', 'HTTP 202' ),
			'204'                  => array( 204, '', 'HTTP 204' ),
			'301'                  => array( 301, '', 'HTTP 301' ),
			'400'                  => array( 400, '{"status":"error","message":"type: required"}', 'type: required' ),
			'401 bad secret'       => array( 401, '{"status":"error","message":"bad signature"}', 'HTTP 401' ),
			'404'                  => array( 404, 'not found', 'HTTP 404' ),
			'413'                  => array( 413, '{"status":"error","message":"too big"}', 'HTTP 413' ),
			'429'                  => array( 429, '', 'HTTP 429' ),
			'500'                  => array( 500, '', 'HTTP 500' ),
			'503 backplane down'   => array( 503, '{"status":"error","message":"backplane unavailable"}', 'backplane unavailable' ),
		);
	}

	public function test_backoff_doubles_from_10s_capped_at_5min_with_jitter() {
		$this->assertSame( 10, Realtime_Events_Outbox::backoff_delay( 1, 0.5 ) );
		$this->assertSame( 20, Realtime_Events_Outbox::backoff_delay( 2, 0.5 ) );
		$this->assertSame( 40, Realtime_Events_Outbox::backoff_delay( 3, 0.5 ) );
		$this->assertSame( 160, Realtime_Events_Outbox::backoff_delay( 5, 0.5 ) );
		$this->assertSame( 300, Realtime_Events_Outbox::backoff_delay( 6, 0.5 ) );
		$this->assertSame( 225, Realtime_Events_Outbox::backoff_delay( 6, 0.0 ) );
		$this->assertSame( 300, Realtime_Events_Outbox::backoff_delay( 1000, 0.999 ) );
		$this->assertSame( 8, Realtime_Events_Outbox::backoff_delay( 1, 0.0 ) );

		$seen = array();
		for ( $i = 0; $i < 500; $i++ ) {
			$d = Realtime_Events_Outbox::backoff_delay( 1 );
			$this->assertGreaterThanOrEqual( 7, $d );
			$this->assertLessThanOrEqual( 13, $d );
			$seen[ $d ] = true;
			$this->assertLessThanOrEqual( 300, Realtime_Events_Outbox::backoff_delay( wp_rand( 1, 60 ) ) );
		}
		$this->assertGreaterThan( 3, count( $seen ), 'jittered' );

		// An hour of outage is about 15 attempts, not a thousand.
		$t = 0;
		$n = 0;
		while ( $t < HOUR_IN_SECONDS ) {
			$t += Realtime_Events_Outbox::backoff_delay( ++$n, 0.5 );
		}
		$this->assertLessThan( 20, $n );
	}

	public function test_a_refused_event_does_not_hold_back_its_batch() {
		$this->fake_hub(
			function ( $url, $args ) {
				$events = json_decode( $args['body'], true );
				if ( count( $events ) > 1 ) {
					return array( 400, '{"status":"error","message":"events[1].payload: bad"}' );
				}
				if ( 'poison' === $events[0]['type'] ) {
					return array( 400, '{"status":"error","message":"payload: bad"}' );
				}
				return array( 200, self::success_for( $args['body'] ) );
			}
		);
		realtime_events_publish( 'c', 'good1' );
		$poison = realtime_events_publish( 'c', 'poison' );
		realtime_events_publish( 'c', 'good2' );
		$stats = Realtime_Events_Outbox::drain( 5, 'test' );
		$this->assertSame( 2, $stats['sent'] );
		$this->assertSame( 1, $stats['failed'] );
		$rows = $this->rows();
		$this->assertCount( 1, $rows );
		$this->assertSame( $poison, $rows[0]->event_id );
		$this->assertCount( 4, $this->requests, 'the batch, then each event alone' );
	}

	public function test_claims_are_exclusive_until_the_lease_expires() {
		realtime_events_publish( 'c', 'a' );
		realtime_events_publish( 'c', 'b' );
		$now = time();
		$one = Realtime_Events_Outbox::claim( 'claim-one', 1, $now );
		$two = Realtime_Events_Outbox::claim( 'claim-two', 10, $now );
		$this->assertCount( 1, $one );
		$this->assertCount( 1, $two );
		$this->assertNotSame( $one[0]->id, $two[0]->id );
		$this->assertCount( 0, Realtime_Events_Outbox::claim( 'claim-three', 10, $now ), 'everything is claimed' );
		// A drain that died: its rows come back after the lease.
		$late = Realtime_Events_Outbox::claim( 'claim-four', 10, $now + Realtime_Events_Outbox::LEASE + 1 );
		$this->assertCount( 2, $late );
	}

	public function test_concurrent_drains_send_each_row_once() {
		global $wpdb;
		$table = Realtime_Events_Outbox::table();
		$now   = time();
		$ids   = array();
		$rows  = array();
		for ( $i = 0; $i < 300; $i++ ) {
			$ids[]  = wp_generate_uuid4();
			$rows[] = $wpdb->prepare( '(%s, %s, %s, NULL, %d, 0, %d)', end( $ids ), 'c', 'concurrent', $now, $now );
		}
		$wpdb->query( "INSERT INTO {$table} (event_id, channel, type, payload, created_at, attempts, next_attempt_at) VALUES " . implode( ',', $rows ) ); // phpcs:ignore

		$log   = tempnam( sys_get_temp_dir(), 'rt-drain' );
		$start = microtime( true ) + 1.5; // every worker has booted WordPress by then
		$procs = array();
		for ( $w = 0; $w < 4; $w++ ) {
			$cmd     = array( PHP_BINARY, __DIR__ . '/drain-worker.php', ABSPATH, $log, (string) $start );
			$procs[] = proc_open( $cmd, array( 1 => array( 'pipe', 'w' ), 2 => array( 'pipe', 'w' ) ), $pipes[ $w ] );
		}
		$sent = 0;
		foreach ( $procs as $w => $proc ) {
			$out = stream_get_contents( $pipes[ $w ][1] );
			$err = stream_get_contents( $pipes[ $w ][2] );
			$this->assertSame( 0, proc_close( $proc ), "worker $w failed: $err" );
			$stats = json_decode( trim( $out ), true );
			$this->assertIsArray( $stats, "worker $w printed: $out $err" );
			$sent += $stats['sent'];
		}
		$lines = array_filter( explode( "\n", (string) file_get_contents( $log ) ) );
		unlink( $log );
		$got     = array_map(
			function ( $l ) {
				return explode( ' ', $l )[0];
			},
			$lines
		);
		$workers = count(
			array_unique(
				array_map(
					function ( $l ) {
						return explode( ' ', $l )[1];
					},
					$lines
				)
			)
		);
		$this->assertSame( 300, $sent );
		$this->assertCount( 300, $got, 'no event sent twice' );
		$this->assertEqualsCanonicalizing( $ids, $got, 'every event sent' );
		$this->assertGreaterThan( 1, $workers, 'the drains really ran concurrently' );
		$this->assertCount( 0, $this->rows() );
	}

	public function test_drain_is_scheduled_every_minute() {
		$schedules = wp_get_schedules();
		$this->assertSame( 60, $schedules['realtime_events_every_minute']['interval'] );
		$this->assertNotFalse( wp_next_scheduled( 'realtime_events_drain' ) );
		$this->assertSame( 'realtime_events_every_minute', wp_get_schedule( 'realtime_events_drain' ) );

		Realtime_Events_Plugin::deactivate();
		$this->assertFalse( wp_next_scheduled( 'realtime_events_drain' ) );
		Realtime_Events_Plugin::activate();
		$this->assertNotFalse( wp_next_scheduled( 'realtime_events_drain' ) );
		$this->assertTrue( has_action( 'realtime_events_drain' ) > 0 );
	}

	public function test_the_cron_hook_drains() {
		$this->fake_hub(
			function ( $url, $args ) {
				return array( 200, self::success_for( $args['body'] ) );
			}
		);
		realtime_events_publish( 'c', 'via_cron' );
		do_action( 'realtime_events_drain' );
		$this->assertCount( 0, $this->rows() );
	}

	private function assertWPError( $value, $message = '' ) {
		$this->assertInstanceOf( 'WP_Error', $value, $message );
	}

	private function assertNotWPError( $value ) {
		$this->assertIsString( $value, is_wp_error( $value ) ? $value->get_error_message() : '' );
	}
}
