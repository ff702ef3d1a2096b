<?php
/**
 * Plugin Name:       Realtime Events
 * Plugin URI:        https://github.com/wprealtime/caddy-realtime
 * Description:       Pushes WordPress events (published posts, approved comments, your own) to browsers in real time through the caddy-realtime hub built into Caddy. Events go through a database outbox, so none is lost when the hub is down.
 * Version:           1.0.0
 * Requires at least: 6.1
 * Requires PHP:      7.4
 * Author:            caddy-realtime contributors
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       realtime-events
 * Domain Path:       /languages
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

define( 'REALTIME_EVENTS_VERSION', '1.0.0' );
define( 'REALTIME_EVENTS_FILE', __FILE__ );
define( 'REALTIME_EVENTS_DIR', plugin_dir_path( __FILE__ ) );

require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-config.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-signer.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-jwt.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-transport.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-outbox.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-publishers.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-auth.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-frontend.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-presence.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-presence-frontend.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-webhook.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-online.php';
require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-plugin.php';
require_once REALTIME_EVENTS_DIR . 'includes/functions.php';

if ( is_admin() ) {
	require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-admin.php';
	require_once REALTIME_EVENTS_DIR . 'includes/class-realtime-events-online-widget.php';
}

register_activation_hook( __FILE__, array( 'Realtime_Events_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'Realtime_Events_Plugin', 'deactivate' ) );

Realtime_Events_Plugin::instance()->boot();
