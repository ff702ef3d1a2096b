<?php
/**
 * Against the real realtime_broadcast of the product's Caddy (run by wordpress_test.go).
 * Skipped when REALTIME_TEST_BROADCAST_URL is not set.
 *
 * @package RealtimeEventsTest
 */

/**
 * The hub accepts what the plugin signs, and nothing else.
 */
class HubTest extends RealtimeTestCase {

	/**
	 * Ingest URL.
	 *
	 * @var string
	 */
	private $url;

	protected function setUp(): void {
		parent::setUp();
		$this->url = (string) getenv( 'REALTIME_TEST_BROADCAST_URL' );
		if ( '' === $this->url ) {
			$this->markTestSkipped( 'REALTIME_TEST_BROADCAST_URL is not set (no hub running)' );
		}
		$url = $this->url;
		$this->hook(
			'realtime_events_broadcast_url',
			function () use ( $url ) {
				return $url;
			}
		);
	}

	private function raw_post( $body, $signature ) {
		$response = wp_remote_post(
			$this->url,
			array(
				'timeout' => 5,
				'headers' => array(
					'Content-Type'         => 'application/json',
					'X-Realtime-Signature' => $signature,
				),
				'body'    => $body,
			)
		);
		$this->assertNotWPError( $response );
		return array( wp_remote_retrieve_response_code( $response ), json_decode( wp_remote_retrieve_body( $response ), true ) );
	}

	private function assertNotWPError( $value ) {
		$this->assertFalse( is_wp_error( $value ), is_wp_error( $value ) ? $value->get_error_message() : '' );
	}

	public function test_signed_batch_is_accepted_and_rows_deleted() {
		$cursors = array();
		$this->hook(
			'realtime_events_delivered',
			function ( $event, $result ) use ( &$cursors ) {
				$cursors[] = $result['cursor'];
			},
			10,
			2
		);
		realtime_events_publish( 'phpunit', 'hub_check', array( 'title' => 'one' ) );
		realtime_events_publish( 'phpunit', 'hub_check', array( 'title' => 'two' ) );
		$stats = Realtime_Events_Outbox::drain( 5, 'test' );
		$this->assertSame( 2, $stats['sent'], (string) $stats['error'] );
		$this->assertCount( 0, $this->rows() );
		$this->assertCount( 2, $cursors );
		$this->assertNotSame( $cursors[0], $cursors[1] );
	}

	public function test_a_resent_event_is_a_duplicate() {
		$body  = wp_json_encode(
			array(
				'id'      => wp_generate_uuid4(),
				'channel' => 'phpunit',
				'type'    => 'dup_check',
			)
		);
		$first = Realtime_Events_Transport::post( $body );
		$again = Realtime_Events_Transport::post( $body );
		$this->assertTrue( $first['ok'], $first['error'] );
		$this->assertTrue( $again['ok'], $again['error'] );
		$this->assertFalse( $first['data']['events'][0]['duplicate'] );
		$this->assertTrue( $again['data']['events'][0]['duplicate'], 'a retry after a lost answer is not delivered twice' );
		$this->assertSame( $first['data']['events'][0]['cursor'], $again['data']['events'][0]['cursor'] );
	}

	public function test_bad_signatures_are_refused() {
		$body = '{"channel":"phpunit","type":"bad_sig"}';
		list( $code ) = $this->raw_post( $body, Realtime_Events_Signer::header_value( $body, 'wrong-secret' ) );
		$this->assertSame( 401, $code, 'wrong secret' );
		list( $code ) = $this->raw_post( $body, Realtime_Events_Signer::header_value( $body, REALTIME_EVENTS_SECRET, time() - 3600 ) );
		$this->assertSame( 401, $code, 'replayed an hour later' );
		list( $code ) = $this->raw_post( $body . ' ', Realtime_Events_Signer::header_value( $body, REALTIME_EVENTS_SECRET ) );
		$this->assertSame( 401, $code, 'body changed after signing' );
		list( $code, $data ) = $this->raw_post( $body, Realtime_Events_Signer::header_value( $body, REALTIME_EVENTS_SECRET ) );
		$this->assertSame( 200, $code );
		$this->assertSame( 'success', $data['status'] );
	}

	public function test_status_check() {
		$status = Realtime_Events_Transport::status_check();
		$this->assertTrue( $status['ok'], $status['error'] );
		$this->assertSame( 200, $status['code'] );
	}
}
