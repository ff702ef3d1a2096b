<?php
/**
 * HMAC signature of publish requests (the README, "Publish API").
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * X-Realtime-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 */
class Realtime_Events_Signer {

	const HEADER = 'X-Realtime-Signature';

	/**
	 * Signature header value for a raw body.
	 *
	 * @param string   $body   Exact bytes that will be sent.
	 * @param string   $secret Shared secret of realtime_broadcast.
	 * @param int|null $time   Unix time (default: now).
	 * @return string
	 */
	public static function header_value( $body, $secret, $time = null ) {
		$t = null === $time ? time() : (int) $time;
		return 't=' . $t . ',v1=' . self::mac( $t, $body, $secret );
	}

	/**
	 * Hex HMAC-SHA256 of "<t>.<body>".
	 *
	 * @param int    $t      Unix time.
	 * @param string $body   Raw body.
	 * @param string $secret Secret.
	 * @return string
	 */
	public static function mac( $t, $body, $secret ) {
		return hash_hmac( 'sha256', (int) $t . '.' . $body, $secret );
	}

	/**
	 * Verifies a header value (the hub's check, here for tests and tools).
	 *
	 * @param string   $header    Header value.
	 * @param string   $body      Raw body.
	 * @param string   $secret    Secret.
	 * @param int      $tolerance Seconds of allowed clock difference.
	 * @param int|null $now       Current unix time.
	 * @return bool
	 */
	public static function verify( $header, $body, $secret, $tolerance = 300, $now = null ) {
		$now = null === $now ? time() : (int) $now;
		$t   = null;
		$v1  = array();
		foreach ( explode( ',', (string) $header ) as $part ) {
			$kv = explode( '=', trim( $part ), 2 );
			if ( 2 !== count( $kv ) ) {
				continue;
			}
			if ( 't' === $kv[0] && ctype_digit( $kv[1] ) ) {
				$t = (int) $kv[1];
			} elseif ( 'v1' === $kv[0] ) {
				$v1[] = strtolower( $kv[1] );
			}
		}
		if ( null === $t || ! $v1 || abs( $now - $t ) > $tolerance ) {
			return false;
		}
		$expected = self::mac( $t, $body, $secret );
		foreach ( $v1 as $candidate ) {
			if ( hash_equals( $expected, $candidate ) ) {
				return true;
			}
		}
		return false;
	}
}
