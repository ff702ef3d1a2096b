<?php
/**
 * Uninstall: drops the outbox table and the plugin's options (on every site of a network).
 * Deactivation keeps them; only deleting the plugin runs this file.
 *
 * @package RealtimeEvents
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

/**
 * Removes this plugin's data from the current site.
 */
function realtime_events_uninstall_site() {
	global $wpdb;
	$table = $wpdb->prefix . 'realtime_events_outbox';
	$wpdb->query( "DROP TABLE IF EXISTS {$table}" ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	delete_option( 'realtime_events_db_version' );
	delete_option( 'realtime_events_last_error' );
	delete_option( 'realtime_events_last_success' );
	wp_clear_scheduled_hook( 'realtime_events_drain' );
}

if ( is_multisite() ) {
	foreach ( get_sites( array( 'fields' => 'ids', 'number' => 0 ) ) as $realtime_events_site_id ) {
		switch_to_blog( $realtime_events_site_id );
		realtime_events_uninstall_site();
		restore_current_blog();
	}
} else {
	realtime_events_uninstall_site();
}
