<?php
/**
 * Small CLI for the end-to-end test (this machine has no WP-CLI).
 *
 *   php tool.php <docroot> outbox                        JSON rows of the outbox
 *   php tool.php <docroot> publish <channel> <type> <payload-json>
 *                                                        realtime_events_publish(); delivered at shutdown
 *   php tool.php <docroot> cron-due                      makes the recurring drain due now
 *   php tool.php <docroot> cron-info                     schedule of the drain event
 *   php tool.php <docroot> status                        outbox stats, last error
 *   php tool.php <docroot> time-passes <post id>         a scheduled post becomes due
 *   php tool.php <docroot> online                        who the webhooks reported online, per channel
 *   php tool.php <docroot> webhook-status                what the settings page shows about webhooks
 *   php tool.php <docroot> uninstall                     deactivate + uninstall (destructive: run last)
 *
 * @package RealtimeEventsTest
 */

if ( 'cli' !== PHP_SAPI || $argc < 3 ) {
	fwrite( STDERR, "usage: php tool.php docroot command [args]\n" );
	exit( 2 );
}
$docroot = $argv[1];
$command = $argv[2];
$args    = array_slice( $argv, 3 );

$_SERVER['HTTP_HOST']       = '127.0.0.1';
$_SERVER['SERVER_NAME']     = '127.0.0.1';
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['REQUEST_METHOD']  = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
require $docroot . '/wp-load.php';

/**
 * Prints JSON and a newline.
 *
 * @param mixed $value Value.
 */
function rt_tool_out( $value ) {
	echo wp_json_encode( $value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ) . "\n";
}

switch ( $command ) {
	case 'outbox':
		global $wpdb;
		$table = Realtime_Events_Outbox::table();
		rt_tool_out( $wpdb->get_results( "SELECT * FROM {$table} ORDER BY id", ARRAY_A ) ); // phpcs:ignore
		break;

	case 'publish':
		if ( count( $args ) < 2 ) {
			fwrite( STDERR, "publish: channel type [payload-json]\n" );
			exit( 2 );
		}
		$payload = isset( $args[2] ) ? json_decode( $args[2], true ) : null;
		$id      = realtime_events_publish( $args[0], $args[1], $payload );
		if ( is_wp_error( $id ) ) {
			fwrite( STDERR, $id->get_error_message() . "\n" );
			exit( 1 );
		}
		rt_tool_out( array( 'id' => $id ) );
		break; // Delivery happens in this process's shutdown hook.

	case 'cron-due':
		$hook = Realtime_Events_Outbox::CRON_HOOK;
		wp_clear_scheduled_hook( $hook );
		$ok = wp_schedule_event( time() - 1, Realtime_Events_Outbox::SCHEDULE, $hook );
		rt_tool_out(
			array(
				'scheduled' => true === $ok,
				'next'      => wp_next_scheduled( $hook ),
				'now'       => time(),
			)
		);
		break;

	case 'cron-info':
		$schedules = wp_get_schedules();
		rt_tool_out(
			array(
				'next'     => wp_next_scheduled( Realtime_Events_Outbox::CRON_HOOK ),
				'schedule' => wp_get_schedule( Realtime_Events_Outbox::CRON_HOOK ),
				'interval' => isset( $schedules[ Realtime_Events_Outbox::SCHEDULE ] ) ? $schedules[ Realtime_Events_Outbox::SCHEDULE ]['interval'] : null,
				'now'      => time(),
			)
		);
		break;

	case 'status':
		rt_tool_out(
			array(
				'stats'      => Realtime_Events_Outbox::stats(),
				'last_error' => get_option( Realtime_Events_Outbox::ERROR_OPTION ),
				'last_ok'    => get_option( Realtime_Events_Outbox::OK_OPTION ),
				'now'        => time(),
			)
		);
		break;

	case 'time-passes':
		// A scheduled post's time has come: move its date and its publish_future_post
		// event to the past (what waiting would do), so the next wp-cron.php run publishes it.
		global $wpdb;
		$post_id = (int) $args[0];
		$past    = time() - 5;
		$wpdb->update(
			$wpdb->posts,
			array(
				'post_date'     => get_date_from_gmt( gmdate( 'Y-m-d H:i:s', $past ) ),
				'post_date_gmt' => gmdate( 'Y-m-d H:i:s', $past ),
			),
			array( 'ID' => $post_id )
		);
		clean_post_cache( $post_id );
		wp_clear_scheduled_hook( 'publish_future_post', array( $post_id ) );
		wp_schedule_single_event( $past, 'publish_future_post', array( $post_id ) );
		rt_tool_out(
			array(
				'status' => get_post_status( $post_id ),
				'next'   => wp_next_scheduled( 'publish_future_post', array( $post_id ) ),
			)
		);
		break;

	case 'online':
		rt_tool_out( (object) Realtime_Events_Online::channels() );
		break;

	case 'webhook-status':
		rt_tool_out( Realtime_Events_Webhook::status() );
		break;

	case 'uninstall':
		// What "Delete" on the Plugins screen does: deactivate, then uninstall.php.
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/plugin.php';
		$plugin = 'realtime-events/realtime-events.php';
		$table  = Realtime_Events_Outbox::table();
		deactivate_plugins( $plugin, true );
		uninstall_plugin( $plugin );
		wp_cache_flush();
		rt_tool_out(
			array(
				'active'     => is_plugin_active( $plugin ),
				'table'      => $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $table ) ),
				'db_version' => get_option( 'realtime_events_db_version' ),
				'last_error' => get_option( 'realtime_events_last_error' ),
				'cron'       => wp_next_scheduled( 'realtime_events_drain' ),
				'tables'     => $wpdb->get_col( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $wpdb->prefix . 'realtime_events_' ) . '%' ) ),
				'options'    => $wpdb->get_col( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE '%realtime\\_events%'" ), // phpcs:ignore
			)
		);
		break;

	default:
		fwrite( STDERR, "unknown command $command\n" );
		exit( 2 );
}
