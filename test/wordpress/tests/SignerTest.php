<?php
/**
 * HMAC signing of publish requests (X-Realtime-Signature, the README, "Publish API").
 *
 * @package RealtimeEventsTest
 */

/**
 * Signer and the headers of real deliveries.
 */
class SignerTest extends RealtimeTestCase {

	public function test_known_vector() {
		// Computed independently: python3 hmac.new(b"test-secret", b'1700000000.{"type":"hello"}', sha256).
		$this->assertSame(
			't=1700000000,v1=b06dba09dc1a61efba959b099e1dfd2cc507f1b435a608ff8edb6bb1858e8d30',
			Realtime_Events_Signer::header_value( '{"type":"hello"}', 'test-secret', 1700000000 )
		);
	}

	public function test_header_format_uses_current_time() {
		$value = Realtime_Events_Signer::header_value( '[]', 's' );
		$this->assertMatchesRegularExpression( '/^t=(\d+),v1=[0-9a-f]{64}$/', $value );
		preg_match( '/^t=(\d+)/', $value, $m );
		$this->assertEqualsWithDelta( time(), (int) $m[1], 2 );
	}

	public function test_verify_accepts_only_the_exact_body_secret_and_window() {
		$body   = '{"type":"x","payload":{"a":1}}';
		$header = Realtime_Events_Signer::header_value( $body, 'k1', 1000 );
		$this->assertTrue( Realtime_Events_Signer::verify( $header, $body, 'k1', 300, 1000 ) );
		$this->assertTrue( Realtime_Events_Signer::verify( $header, $body, 'k1', 300, 1300 ) );
		$this->assertFalse( Realtime_Events_Signer::verify( $header, $body, 'k1', 300, 1301 ), 'outside the tolerance' );
		$this->assertFalse( Realtime_Events_Signer::verify( $header, $body . ' ', 'k1', 300, 1000 ), 'body changed' );
		$this->assertFalse( Realtime_Events_Signer::verify( $header, $body, 'k2', 300, 1000 ), 'other secret' );
		$this->assertFalse( Realtime_Events_Signer::verify( 'v1=abc', $body, 'k1', 300, 1000 ), 'no timestamp' );
		$this->assertTrue(
			Realtime_Events_Signer::verify( 't=1000,v1=' . str_repeat( '0', 64 ) . ',v1=' . Realtime_Events_Signer::mac( 1000, $body, 'k1' ), $body, 'k1', 300, 1000 ),
			'one of several v1 values (key rotation) is enough'
		);
	}

	public function test_delivery_is_signed_with_hmac_not_bearer() {
		$this->fake_hub(
			function ( $url, $args ) {
				return array( 200, self::success_for( $args['body'] ) );
			}
		);
		realtime_events_publish( 'default', 'signed_check', array( 'title' => 'héllo <b>' ) );
		Realtime_Events_Outbox::drain( 5, 'test' );

		$this->assertCount( 1, $this->requests );
		list( $url, $args ) = $this->requests[0];
		$this->assertSame( Realtime_Events_Config::broadcast_url(), $url );
		$this->assertSame( 'POST', $args['method'] );
		$this->assertTrue( $args['blocking'] );
		$this->assertLessThanOrEqual( 10, $args['timeout'] );
		$this->assertSame( 'application/json', $args['headers']['Content-Type'] );
		$this->assertArrayNotHasKey( 'Authorization', $args['headers'] );
		$this->assertTrue(
			Realtime_Events_Signer::verify( $args['headers']['X-Realtime-Signature'], $args['body'], REALTIME_EVENTS_SECRET ),
			'the signature covers the exact bytes sent'
		);
		$sent = json_decode( $args['body'], true );
		$this->assertSame( 'héllo <b>', $sent[0]['payload']['title'] );
	}
}
