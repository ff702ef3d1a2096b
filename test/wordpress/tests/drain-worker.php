<?php
/**
 * One of several concurrent drains (OutboxTest::test_concurrent_drains_send_each_row_once).
 * Usage: php drain-worker.php <docroot> <log file> <start unix time (float)>
 * Waits for the start time, then drains with a fake hub that appends every event id it
 * receives to the log file and answers 200.
 *
 * @package RealtimeEventsTest
 */

list( , $docroot, $log, $start ) = $argv;
$_SERVER['HTTP_HOST']       = '127.0.0.1';
$_SERVER['SERVER_NAME']     = '127.0.0.1';
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['REQUEST_METHOD']  = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
require $docroot . '/wp-load.php';

add_filter(
	'realtime_events_batch_size',
	function () {
		return 5;
	}
);
add_filter(
	'pre_http_request',
	function ( $pre, $args ) use ( $log ) {
		$events = json_decode( $args['body'], true );
		$lines  = '';
		$out    = array();
		foreach ( $events as $e ) {
			$lines .= $e['id'] . ' ' . getmypid() . "\n";
			$out[]  = array(
				'channel'   => $e['channel'],
				'cursor'    => 'x',
				'duplicate' => false,
			);
		}
		file_put_contents( $log, $lines, FILE_APPEND | LOCK_EX );
		usleep( 2000 ); // a little network time, so the drains overlap
		return array(
			'headers'  => array(),
			'body'     => wp_json_encode(
				array(
					'status' => 'success',
					'events' => $out,
				)
			),
			'response' => array(
				'code'    => 200,
				'message' => 'OK',
			),
			'cookies'  => array(),
			'filename' => null,
		);
	},
	10,
	2
);

while ( microtime( true ) < (float) $start ) {
	usleep( 1000 );
}
$stats = Realtime_Events_Outbox::drain( 60, 'test' );
echo wp_json_encode( $stats ) . "\n";
