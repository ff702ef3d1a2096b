<?php
/**
 * HTTP delivery to realtime_broadcast.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * POSTs signed JSON bodies to the hub and interprets the answer.
 */
class Realtime_Events_Transport {

	/**
	 * Sends a raw JSON body, signed with X-Realtime-Signature.
	 *
	 * Success means HTTP 200 *and* the hub's JSON answer {"status":"success"}: a 200
	 * from anything else (a misrouted URL answered by a web page) must not delete events.
	 *
	 * @param string $body    JSON text, sent byte for byte as signed.
	 * @param float  $timeout Seconds.
	 * @return array{ok:bool,code:int,error:string,data:mixed,ms:int}
	 */
	public static function post( $body, $timeout = 5.0 ) {
		$result = array(
			'ok'    => false,
			'code'  => 0,
			'error' => '',
			'data'  => null,
			'ms'    => 0,
		);
		$secret = Realtime_Events_Config::secret();
		if ( '' === $secret ) {
			$result['error'] = __( 'REALTIME_EVENTS_SECRET is not defined in wp-config.php.', 'realtime-events' );
			return $result;
		}
		$url = Realtime_Events_Config::broadcast_url();
		if ( ! preg_match( '#^https?://[^/\s]+#i', $url ) ) {
			$result['error'] = __( 'The broadcast URL is not a valid http(s) URL.', 'realtime-events' );
			return $result;
		}

		$args = array(
			'method'      => 'POST',
			'timeout'     => $timeout,
			'redirection' => 0,
			'blocking'    => true,
			'httpversion' => '1.1',
			'user-agent'  => 'realtime-events/' . REALTIME_EVENTS_VERSION . '; ' . home_url( '/' ),
			'headers'     => array(
				'Content-Type'          => 'application/json',
				'Accept'                => 'application/json',
				Realtime_Events_Signer::HEADER => Realtime_Events_Signer::header_value( $body, $secret ),
			),
			'body'        => $body,
		);
		/**
		 * Filters the wp_remote_post() arguments of a delivery (e.g. sslverify for a private CA).
		 *
		 * @param array  $args Request arguments.
		 * @param string $url  Publish endpoint.
		 */
		$args = apply_filters( 'realtime_events_http_args', $args, $url );

		$start    = microtime( true );
		$response = wp_remote_post( $url, $args );
		$result['ms'] = (int) round( ( microtime( true ) - $start ) * 1000 );

		if ( is_wp_error( $response ) ) {
			$result['error'] = $response->get_error_message();
			return $result;
		}
		$code           = (int) wp_remote_retrieve_response_code( $response );
		$text           = (string) wp_remote_retrieve_body( $response );
		$data           = json_decode( $text, true );
		$result['code'] = $code;
		$result['data'] = $data;
		if ( 200 === $code && is_array( $data ) && isset( $data['status'] ) && 'success' === $data['status'] ) {
			$result['ok'] = true;
			return $result;
		}
		$message = is_array( $data ) && isset( $data['message'] ) && is_string( $data['message'] ) ? $data['message'] : '';
		if ( 200 === $code ) {
			$message = __( 'HTTP 200 without the hub\'s JSON answer: is the broadcast URL pointing at realtime_broadcast?', 'realtime-events' );
		} elseif ( '' === $message ) {
			$message = wp_remote_retrieve_response_message( $response );
		}
		/* translators: 1: HTTP status code, 2: message of the hub. */
		$result['error'] = sprintf( __( 'HTTP %1$d: %2$s', 'realtime-events' ), $code, self::shorten( $message ) );
		return $result;
	}

	/**
	 * A signed test publish that shows whether the hub is reachable and the secret matches.
	 *
	 * @return array Same shape as post().
	 */
	public static function status_check() {
		$body = wp_json_encode(
			array(
				'channel' => 'realtime-events.status',
				'type'    => 'status_check',
				'id'      => wp_generate_uuid4(),
				'payload' => array( 'site' => home_url( '/' ) ),
			),
			JSON_UNESCAPED_SLASHES
		);
		return self::post( $body, 3.0 );
	}

	/**
	 * Keeps error text short and single-line for storage and display.
	 *
	 * @param string $text Text.
	 * @return string
	 */
	public static function shorten( $text ) {
		$text = trim( preg_replace( '/\s+/', ' ', wp_strip_all_tags( (string) $text ) ) );
		if ( strlen( $text ) > 300 ) {
			$text = substr( $text, 0, 297 ) . '...';
		}
		return $text;
	}
}
