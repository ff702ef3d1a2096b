<?php
/**
 * Uninstall: drops the plugin's tables (outbox, webhook ids, online members) and options (on every site of a network).
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
	foreach ( array( 'realtime_events_outbox', 'realtime_events_webhook_ids', 'realtime_events_online' ) as $name ) {
		$table = $wpdb->prefix . $name;
		$wpdb->query( "DROP TABLE IF EXISTS {$table}" ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}
	delete_option( 'realtime_events_db_version' );
	delete_option( 'realtime_events_last_error' );
	delete_option( 'realtime_events_last_success' );
	delete_option( 'realtime_events_webhook_db_version' );
	delete_option( 'realtime_events_webhook_status' );
	delete_option( 'realtime_events_online_db_version' );
	// Rate-limit counters of anonymous presence grants (transients, when not in an object cache).
	$wpdb->query( "DELETE FROM {$wpdb->options} WHERE option_name LIKE '\\_transient\\_realtime\\_events\\_rl\\_%' OR option_name LIKE '\\_transient\\_timeout\\_realtime\\_events\\_rl\\_%'" ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
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
