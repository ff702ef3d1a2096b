<?php
/**
 * Shared helpers: a clean outbox per test and a fake hub behind pre_http_request.
 *
 * @package RealtimeEventsTest
 */

use PHPUnit\Framework\TestCase;

/**
 * Base class of the plugin tests.
 */
abstract class RealtimeTestCase extends TestCase {

	/**
	 * Requests the fake hub received: [url, args].
	 *
	 * @var array
	 */
	protected $requests = array();

	/**
	 * Filters/actions added by a test: [hook, callback, priority].
	 *
	 * @var array
	 */
	private $hooks = array();

	protected function setUp(): void {
		parent::setUp();
		global $wpdb;
		$wpdb->query( 'TRUNCATE TABLE ' . Realtime_Events_Outbox::table() ); // phpcs:ignore
		delete_option( Realtime_Events_Outbox::ERROR_OPTION );
		delete_option( Realtime_Events_Outbox::OK_OPTION );
		$this->requests = array();
		wp_set_current_user( 0 );
	}

	protected function tearDown(): void {
		foreach ( $this->hooks as $hook ) {
			remove_filter( $hook[0], $hook[1], $hook[2] );
		}
		$this->hooks = array();
		wp_set_current_user( 0 );
		parent::tearDown();
	}

	/**
	 * add_filter() that is undone in tearDown().
	 */
	protected function hook( $name, $callback, $priority = 10, $args = 1 ) {
		add_filter( $name, $callback, $priority, $args );
		$this->hooks[] = array( $name, $callback, $priority );
	}

	/**
	 * Routes wp_remote_post() to $responder( $url, $args ), which returns
	 * [code, body] or a WP_Error.
	 */
	protected function fake_hub( callable $responder ) {
		$this->hook(
			'pre_http_request',
			function ( $pre, $args, $url ) use ( $responder ) {
				$this->requests[] = array( $url, $args );
				$answer           = $responder( $url, $args );
				if ( is_wp_error( $answer ) ) {
					return $answer;
				}
				return array(
					'headers'  => array( 'content-type' => 'application/json' ),
					'body'     => $answer[1],
					'response' => array(
						'code'    => $answer[0],
						'message' => get_status_header_desc( $answer[0] ),
					),
					'cookies'  => array(),
					'filename' => null,
				);
			},
			10,
			3
		);
	}

	/**
	 * A hub answer for a body of events.
	 */
	protected static function success_for( $body ) {
		$events = json_decode( $body, true );
		$events = isset( $events['type'] ) ? array( $events ) : $events;
		$out    = array();
		foreach ( $events as $i => $e ) {
			$out[] = array(
				'channel'   => $e['channel'],
				'cursor'    => 'c' . $i,
				'duplicate' => false,
			);
		}
		return wp_json_encode(
			array(
				'status'  => 'success',
				'message' => 'ok',
				'events'  => $out,
			)
		);
	}

	/**
	 * Outbox rows.
	 *
	 * @return array<object>
	 */
	protected function rows() {
		global $wpdb;
		return $wpdb->get_results( 'SELECT * FROM ' . Realtime_Events_Outbox::table() . ' ORDER BY id' ); // phpcs:ignore
	}
}
