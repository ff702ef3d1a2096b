<?php
/**
 * Minimal JWT, HS256 only (the algorithm is fixed here, never read from a token).
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Signs and checks HS256 JSON Web Tokens (RFC 7519) for the hub's `token_secret`.
 */
class Realtime_Events_JWT {

	/**
	 * Builds a signed token.
	 *
	 * @param array  $claims Claims (sub, exp, channels...).
	 * @param string $secret HS256 key.
	 * @return string
	 */
	public static function encode( array $claims, $secret ) {
		$header  = self::b64url( wp_json_encode( array( 'alg' => 'HS256', 'typ' => 'JWT' ) ) );
		$payload = self::b64url( wp_json_encode( $claims, JSON_UNESCAPED_SLASHES ) );
		$sig     = hash_hmac( 'sha256', $header . '.' . $payload, $secret, true );
		return $header . '.' . $payload . '.' . self::b64url( $sig );
	}

	/**
	 * Checks a token and returns its claims.
	 *
	 * @param string   $token  Compact JWT.
	 * @param string   $secret HS256 key.
	 * @param int|null $now    Current unix time.
	 * @return array|WP_Error Claims, or an error (token_invalid, token_expired).
	 */
	public static function decode( $token, $secret, $now = null ) {
		$now   = null === $now ? time() : (int) $now;
		$parts = explode( '.', (string) $token );
		if ( 3 !== count( $parts ) || '' === $secret ) {
			return new WP_Error( 'token_invalid', 'malformed token' );
		}
		$header = json_decode( (string) self::b64url_decode( $parts[0] ), true );
		if ( ! is_array( $header ) || ! isset( $header['alg'] ) || 'HS256' !== $header['alg'] ) {
			return new WP_Error( 'token_invalid', 'unsupported algorithm' );
		}
		$expected = self::b64url( hash_hmac( 'sha256', $parts[0] . '.' . $parts[1], $secret, true ) );
		if ( ! hash_equals( $expected, $parts[2] ) ) {
			return new WP_Error( 'token_invalid', 'bad signature' );
		}
		$claims = json_decode( (string) self::b64url_decode( $parts[1] ), true );
		if ( ! is_array( $claims ) || ! isset( $claims['exp'] ) || ! is_numeric( $claims['exp'] ) ) {
			return new WP_Error( 'token_invalid', 'missing exp' );
		}
		if ( (int) $claims['exp'] <= $now ) {
			return new WP_Error( 'token_expired', 'token expired' );
		}
		return $claims;
	}

	/**
	 * Base64url without padding.
	 *
	 * @param string $data Bytes.
	 * @return string
	 */
	public static function b64url( $data ) {
		return rtrim( strtr( base64_encode( $data ), '+/', '-_' ), '=' ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode
	}

	/**
	 * Inverse of b64url().
	 *
	 * @param string $data Base64url text.
	 * @return string|false
	 */
	public static function b64url_decode( $data ) {
		$data = strtr( (string) $data, '-_', '+/' );
		$pad  = strlen( $data ) % 4;
		if ( $pad ) {
			$data .= str_repeat( '=', 4 - $pad );
		}
		return base64_decode( $data, true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode
	}
}
