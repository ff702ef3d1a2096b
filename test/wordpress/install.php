<?php
/**
 * Installs the scratch WordPress without WP-CLI: wp_install() + activate_plugin().
 * Usage: php install.php <docroot> <site url> <admin password> <reader password>
 * Prints JSON: {"site","page_url","page_id","admin_id","reader_id"}. Idempotent.
 *
 * @package RealtimeEventsTest
 */

if ( 'cli' !== PHP_SAPI || $argc < 5 ) {
	fwrite( STDERR, "usage: php install.php docroot site-url admin-password reader-password\n" );
	exit( 2 );
}
list( , $docroot, $site, $admin_password, $reader_password ) = $argv;

$parts                      = parse_url( $site );
$_SERVER['HTTP_HOST']       = $parts['host'] . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' );
$_SERVER['SERVER_NAME']     = $parts['host'];
$_SERVER['SERVER_PORT']     = isset( $parts['port'] ) ? (string) $parts['port'] : '80';
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['REQUEST_METHOD']  = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';

define( 'WP_INSTALLING', true );
require $docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

if ( ! is_blog_installed() ) {
	$result = wp_install( 'Realtime Events test site', 'admin', 'admin@example.test', false, '', wp_slash( $admin_password ) );
	if ( is_wp_error( $result ) ) {
		fwrite( STDERR, 'wp_install: ' . $result->get_error_message() . "\n" );
		exit( 1 );
	}
}

// Pretty permalinks (Caddy's php_fastcgi does the front-controller rewrite).
global $wp_rewrite;
$wp_rewrite->set_permalink_structure( '/%postname%/' );
flush_rewrite_rules( false );

$theme = wp_get_theme( 'twentytwentyone' );
if ( $theme->exists() && get_stylesheet() !== 'twentytwentyone' ) {
	switch_theme( 'twentytwentyone' );
}

$plugin = 'realtime-events/realtime-events.php';
$result = activate_plugin( $plugin );
if ( is_wp_error( $result ) ) {
	fwrite( STDERR, 'activate_plugin: ' . $result->get_error_message() . "\n" );
	exit( 1 );
}
if ( ! is_plugin_active( $plugin ) ) {
	fwrite( STDERR, "activate_plugin: plugin is not active\n" );
	exit( 1 );
}

// A subscriber for the private-channel test.
$reader = get_user_by( 'login', 'reader' );
if ( ! $reader ) {
	$reader_id = wp_insert_user(
		array(
			'user_login' => 'reader',
			'user_pass'  => $reader_password,
			'user_email' => 'reader@example.test',
			'role'       => 'subscriber',
		)
	);
	if ( is_wp_error( $reader_id ) ) {
		fwrite( STDERR, 'wp_insert_user: ' . $reader_id->get_error_message() . "\n" );
		exit( 1 );
	}
} else {
	$reader_id = $reader->ID;
	wp_set_password( $reader_password, $reader_id );
}

// A second user for presence: an author whose display name is HTML. WordPress strips tags
// from display names it saves; a plugin or an import may not, so it is written directly.
$writer = get_user_by( 'login', 'writer' );
if ( ! $writer ) {
	$writer_id = wp_insert_user(
		array(
			'user_login' => 'writer',
			'user_pass'  => $reader_password,
			'user_email' => 'writer@example.test',
			'role'       => 'author',
		)
	);
	if ( is_wp_error( $writer_id ) ) {
		fwrite( STDERR, 'wp_insert_user: ' . $writer_id->get_error_message() . "\n" );
		exit( 1 );
	}
} else {
	$writer_id = $writer->ID;
	wp_set_password( $reader_password, $writer_id );
}
$GLOBALS['wpdb']->update( $GLOBALS['wpdb']->users, array( 'display_name' => 'Writer <img src=x onerror="window.__xss=1">' ), array( 'ID' => $writer_id ) );
clean_user_cache( $writer_id );
// WordPress's own toolbar prints the display name as HTML ("Howdy, ..."): keep it off the
// writer's front-end pages, so that the presence list is what the test checks there.
update_user_meta( $writer_id, 'show_admin_bar_front', 'false' );

/**
 * A published page, created once.
 *
 * @param string $slug    Slug.
 * @param string $title   Title.
 * @param string $content Content.
 * @return int Page id.
 */
function realtime_install_page( $slug, $title, $content ) {
	$page = get_page_by_path( $slug );
	if ( $page ) {
		return (int) $page->ID;
	}
	$id = wp_insert_post(
		array(
			'post_type'    => 'page',
			'post_status'  => 'publish',
			'post_title'   => $title,
			'post_name'    => $slug,
			'post_content' => $content,
		),
		true
	);
	if ( is_wp_error( $id ) ) {
		fwrite( STDERR, 'wp_insert_post: ' . $id->get_error_message() . "\n" );
		exit( 1 );
	}
	return (int) $id;
}

// Who is reading: a page with [realtime_presence] only (the presence script starts the
// client), and a page with the notification area too that shows the same channel (the
// client is already connected when the presence script runs).
$reading_id      = realtime_install_page( 'reading', 'Reading now', '<!-- wp:shortcode -->[realtime_presence]<!-- /wp:shortcode -->' );
$reading_live_id = realtime_install_page( 'reading-live', 'Reading now, with notifications', '<!-- wp:shortcode -->[realtime_presence channel="presence-post.' . $reading_id . '"]<!-- /wp:shortcode --><!-- wp:shortcode -->[realtime_notifications channels="posts"]<!-- /wp:shortcode -->' );

// The page visitors watch.
$page = get_page_by_path( 'live' );
if ( ! $page ) {
	$page_id = wp_insert_post(
		array(
			'post_type'    => 'page',
			'post_status'  => 'publish',
			'post_title'   => 'Live',
			'post_name'    => 'live',
			'post_content' => '<!-- wp:shortcode -->[realtime_notifications channels="default,posts"]<!-- /wp:shortcode -->',
		),
		true
	);
	if ( is_wp_error( $page_id ) ) {
		fwrite( STDERR, 'wp_insert_post: ' . $page_id->get_error_message() . "\n" );
		exit( 1 );
	}
} else {
	$page_id = $page->ID;
}

$admin = get_user_by( 'login', 'admin' );
echo wp_json_encode(
	array(
		'site'             => $site,
		'page_url'         => get_permalink( $page_id ),
		'page_id'          => (int) $page_id,
		'admin_id'         => (int) $admin->ID,
		'reader_id'        => (int) $reader_id,
		'writer_id'        => (int) $writer_id,
		'reading_id'       => $reading_id,
		'reading_url'      => get_permalink( $reading_id ),
		'reading_live_url' => get_permalink( $reading_live_id ),
		'db_table'         => $GLOBALS['wpdb']->prefix . 'realtime_events_outbox',
	),
	JSON_UNESCAPED_SLASHES
) . "\n";
