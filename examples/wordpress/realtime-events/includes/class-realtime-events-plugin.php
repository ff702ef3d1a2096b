<?php
/**
 * Wiring: hooks, activation, the shutdown drain.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Plugin bootstrap (one instance per request).
 */
final class Realtime_Events_Plugin {

	/**
	 * Singleton.
	 *
	 * @var Realtime_Events_Plugin|null
	 */
	private static $instance = null;

	/**
	 * Ids of the events this request queued.
	 *
	 * @var string[]
	 */
	private $queued = array();

	/**
	 * True once the shutdown drain started.
	 *
	 * @var bool
	 */
	private $draining = false;

	/**
	 * The instance.
	 *
	 * @return Realtime_Events_Plugin
	 */
	public static function instance() {
		if ( null === self::$instance ) {
			self::$instance = new self();
		}
		return self::$instance;
	}

	/**
	 * Registers every hook. The cron_schedules filter is added on every request: wp-cron.php
	 * needs the interval to reschedule the recurring drain.
	 */
	public function boot() {
		add_filter( 'cron_schedules', array( 'Realtime_Events_Outbox', 'cron_schedules' ) ); // phpcs:ignore WordPress.WP.CronInterval.ChangeDetected
		add_action( Realtime_Events_Outbox::CRON_HOOK, array( $this, 'cron_drain' ) );
		add_action( 'plugins_loaded', array( 'Realtime_Events_Outbox', 'maybe_install' ) );
		add_action( 'plugins_loaded', array( 'Realtime_Events_Webhook', 'maybe_install' ) );
		add_action( 'plugins_loaded', array( 'Realtime_Events_Online', 'maybe_install' ) );
		add_action( 'init', array( $this, 'init' ) );
		add_action( 'shutdown', array( $this, 'shutdown' ), 1000 );

		Realtime_Events_Publishers::register();
		Realtime_Events_Auth::register();
		Realtime_Events_Frontend::register();
		Realtime_Events_Presence::register();
		Realtime_Events_Presence_Frontend::register();
		Realtime_Events_Webhook::register();
		Realtime_Events_Online::register();
		if ( is_admin() && class_exists( 'Realtime_Events_Admin' ) ) {
			Realtime_Events_Admin::register();
			Realtime_Events_Online_Widget::register();
		}
	}

	/**
	 * Loads translations and makes sure the drain event exists while the plugin is active.
	 */
	public function init() {
		load_plugin_textdomain( 'realtime-events', false, dirname( plugin_basename( REALTIME_EVENTS_FILE ) ) . '/languages' );
		if ( ! wp_installing() ) {
			Realtime_Events_Outbox::ensure_scheduled();
		}
	}

	/**
	 * Activation: tables and the recurring drain.
	 */
	public static function activate() {
		Realtime_Events_Outbox::install();
		Realtime_Events_Webhook::install();
		Realtime_Events_Online::install();
		Realtime_Events_Outbox::ensure_scheduled();
	}

	/**
	 * Deactivation: the drain stops; the table and its pending events stay.
	 */
	public static function deactivate() {
		wp_clear_scheduled_hook( Realtime_Events_Outbox::CRON_HOOK );
	}

	/**
	 * The WP-Cron drain (every minute).
	 */
	public function cron_drain() {
		Realtime_Events_Outbox::drain( (float) apply_filters( 'realtime_events_cron_budget', 20.0 ), 'cron' );
	}

	/**
	 * Notes that this request queued an event: it will be sent at shutdown.
	 *
	 * @param string $id Event id.
	 */
	public function queued( $id ) {
		$this->queued[] = $id;
	}

	/**
	 * Ids queued by this request.
	 *
	 * @return string[]
	 */
	public function queued_ids() {
		return $this->queued;
	}

	/**
	 * At the end of a request that queued events: finish the HTTP response first (PHP-FPM),
	 * then deliver, so no visitor or editor waits for the hub.
	 */
	public function shutdown() {
		if ( ! $this->queued || $this->draining || ! Realtime_Events_Config::can_publish() ) {
			return;
		}
		$this->draining = true;
		/**
		 * Filters whether the response is finished (fastcgi_finish_request) before the
		 * shutdown delivery. Turn off if another plugin still prints output at shutdown.
		 *
		 * @param bool $finish Default true.
		 */
		$finished = 'cli' === PHP_SAPI;
		if ( ! $finished && apply_filters( 'realtime_events_finish_request', true ) ) {
			if ( function_exists( 'fastcgi_finish_request' ) ) {
				fastcgi_finish_request(); // PHP-FPM (false when already finished, as in wp-cron.php)
				$finished = true;
			} elseif ( function_exists( 'litespeed_finish_request' ) ) {
				litespeed_finish_request(); // LiteSpeed
				$finished = true;
			}
		}
		ignore_user_abort( true );
		/**
		 * Filters the seconds the shutdown delivery may take (default 10, or 3 when the
		 * response could not be finished first and the visitor is still waiting).
		 *
		 * @param float $budget   Seconds.
		 * @param bool  $finished Whether the response was already sent.
		 */
		$budget = (float) apply_filters( 'realtime_events_shutdown_budget', $finished ? 10.0 : 3.0, $finished );
		Realtime_Events_Outbox::drain( $budget, 'shutdown' );
	}

	/**
	 * Records a publishing error for the settings page (and the PHP log under WP_DEBUG).
	 *
	 * @param WP_Error $error Error.
	 */
	public function log_error( $error ) {
		$message = $error->get_error_message();
		update_option(
			Realtime_Events_Outbox::ERROR_OPTION,
			array(
				'time'    => time(),
				'message' => Realtime_Events_Transport::shorten( $message ),
			),
			false
		);
		if ( defined( 'WP_DEBUG' ) && WP_DEBUG ) {
			error_log( 'realtime-events: ' . $message ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
		}
	}
}
