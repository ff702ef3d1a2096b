<?php
/**
 * PHPUnit bootstrap: loads the scratch WordPress prepared by setup.sh (WP_ROOT), with the
 * plugin active, against the real MariaDB.
 *
 * @package RealtimeEventsTest
 */

$realtime_root = getenv( 'WP_ROOT' );
if ( ! $realtime_root || ! is_file( $realtime_root . '/wp-load.php' ) ) {
	fwrite( STDERR, "WP_ROOT must point at the docroot prepared by test/wordpress/setup.sh\n" );
	exit( 1 );
}
$_SERVER['HTTP_HOST']       = '127.0.0.1';
$_SERVER['SERVER_NAME']     = '127.0.0.1';
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['REQUEST_METHOD']  = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';

/**
 * Loads WordPress. PHPUnit includes this bootstrap inside a method and copies its local
 * variables into $GLOBALS afterwards, so WordPress is loaded from a function of its own,
 * with the globals that core sets at file scope declared first (as core's test suite does).
 *
 * @param string $root Docroot.
 */
function realtime_events_test_load_wordpress( $root ) {
	global $wpdb, $current_site, $current_blog, $wp_rewrite, $shortcode_tags, $wp, $phpmailer, $wp_theme_directories, $wp_version, $wp_db_version;
	require $root . '/wp-load.php';
}
realtime_events_test_load_wordpress( $realtime_root );

if ( ! class_exists( 'Realtime_Events_Plugin' ) ) {
	fwrite( STDERR, "the realtime-events plugin is not active in WP_ROOT\n" );
	exit( 1 );
}
// Tests drive delivery themselves; the end-of-request delivery of the PHPUnit process
// itself must not send anything.
remove_action( 'shutdown', array( Realtime_Events_Plugin::instance(), 'shutdown' ), 1000 );

require __DIR__ . '/RealtimeTestCase.php';
