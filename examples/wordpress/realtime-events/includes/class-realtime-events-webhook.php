<?php
/**
 * The webhook receiver: what happened on the hub, told to WordPress.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * POST /wp-json/realtime-events/v1/webhook, the target of the hub's
 * `webhook <url> { secret <secret> }`.
 *
 * Body (Pusher's webhook format plus an id per event):
 *     {"time_ms":1733300000000,"events":[{"name":"member_added","channel":"presence-post.7","user_id":"42","id":"..."}]}
 * signed `X-Realtime-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` with
 * REALTIME_EVENTS_WEBHOOK_SECRET (or REALTIME_EVENTS_SECRET when that is not defined).
 *
 * A request is refused (401) unless the signature matches and `t` is within TOLERANCE
 * seconds of this server's clock (a captured request cannot be replayed later). The hub
 * delivers at least once: an event whose id was seen within KEEP_IDS seconds is dropped.
 * Every other event fires
 *     do_action( 'realtime_events_webhook', $event, $time_ms );
 *     do_action( "realtime_events_webhook_{$name}", $event, $time_ms );
 * If a handler throws, the event's id is forgotten and the answer is 500, so the hub sends
 * the batch again: the events before it are then duplicates, it and those after it are not.
 */
class Realtime_Events_Webhook {

	const REST_ROUTE    = '/webhook';
	const HEADER        = 'X-Realtime-Signature';
	const DB_VERSION    = '1';
	const DB_OPTION     = 'realtime_events_webhook_db_version';
	const STATUS_OPTION = 'realtime_events_webhook_status';

	/** Seconds a signature's time may differ from this server's clock. */
	const TOLERANCE = 300;

	/** Seconds event ids are kept for deduplication (the hub retries for up to an hour). */
	const KEEP_IDS = 7200;

	/** Largest body accepted, in bytes. */
	const MAX_BODY = 1048576;

	/**
	 * Table of the event ids seen (per site on multisite).
	 *
	 * @return string
	 */
	public static function table() {
		global $wpdb;
		return $wpdb->prefix . 'realtime_events_webhook_ids';
	}

	/**
	 * Creates or upgrades the table with dbDelta.
	 */
	public static function install() {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::table();
		$charset = $wpdb->get_charset_collate();
		dbDelta(
			"CREATE TABLE {$table} (
  event_id varchar(128) NOT NULL,
  seen_at bigint(20) unsigned NOT NULL,
  PRIMARY KEY  (event_id),
  KEY seen_at (seen_at)
) {$charset};"
		);
		update_option( self::DB_OPTION, self::DB_VERSION, true );
	}

	/**
	 * Installs the table when the stored schema version differs.
	 */
	public static function maybe_install() {
		if ( get_option( self::DB_OPTION ) !== self::DB_VERSION ) {
			self::install();
		}
	}

	/**
	 * Hooks.
	 */
	public static function register() {
		add_action( 'rest_api_init', array( __CLASS__, 'register_routes' ) );
	}

	/**
	 * The URL to give the hub's `webhook`.
	 *
	 * @return string
	 */
	public static function url() {
		return rest_url( Realtime_Events_Auth::REST_NAMESPACE . self::REST_ROUTE );
	}

	/**
	 * The REST route.
	 */
	public static function register_routes() {
		register_rest_route(
			Realtime_Events_Auth::REST_NAMESPACE,
			self::REST_ROUTE,
			array(
				'methods'             => WP_REST_Server::CREATABLE,
				'callback'            => array( __CLASS__, 'rest_receive' ),
				// The caller is the hub, not a WordPress user: the signature, checked in
				// receive() before anything else happens, is the credential.
				'permission_callback' => '__return_true',
			)
		);
	}

	/**
	 * Seconds of allowed clock difference.
	 *
	 * @return int
	 */
	public static function tolerance() {
		/**
		 * Filters how many seconds a webhook signature's time may differ from this server's
		 * clock (default 300, like the hub's signature_tolerance).
		 *
		 * @param int $seconds Seconds.
		 */
		return max( 1, (int) apply_filters( 'realtime_events_webhook_tolerance', self::TOLERANCE ) );
	}

	/**
	 * Checks a signature header.
	 *
	 * @param string   $header Value of X-Realtime-Signature.
	 * @param string   $body   Raw body.
	 * @param string   $secret Secret ('' refuses everything).
	 * @param int|null $now    Unix time.
	 * @return true|WP_Error Codes: realtime_events_webhook_not_configured, _unsigned,
	 *                       _bad_signature, _stale.
	 */
	public static function verify( $header, $body, $secret, $now = null ) {
		if ( '' === $secret ) {
			return new WP_Error( 'realtime_events_webhook_not_configured', __( 'No webhook secret is configured (REALTIME_EVENTS_WEBHOOK_SECRET or REALTIME_EVENTS_SECRET).', 'realtime-events' ) );
		}
		$t  = null;
		$v1 = array();
		foreach ( explode( ',', (string) $header ) as $part ) {
			$kv = explode( '=', trim( $part ), 2 );
			if ( 2 !== count( $kv ) ) {
				continue;
			}
			if ( 't' === $kv[0] && ctype_digit( $kv[1] ) && strlen( $kv[1] ) <= 12 ) {
				$t = (int) $kv[1];
			} elseif ( 'v1' === $kv[0] ) {
				$v1[] = strtolower( $kv[1] );
			}
		}
		if ( null === $t || ! $v1 ) {
			return new WP_Error( 'realtime_events_webhook_unsigned', __( 'Missing or malformed X-Realtime-Signature.', 'realtime-events' ) );
		}
		$expected = Realtime_Events_Signer::mac( $t, $body, $secret );
		$match    = false;
		foreach ( $v1 as $candidate ) {
			$match = hash_equals( $expected, $candidate ) || $match;
		}
		if ( ! $match ) {
			return new WP_Error( 'realtime_events_webhook_bad_signature', __( 'The signature does not match (is the secret the same on both sides?).', 'realtime-events' ) );
		}
		$now = null === $now ? time() : (int) $now;
		if ( abs( $now - $t ) > self::tolerance() ) {
			return new WP_Error(
				'realtime_events_webhook_stale',
				/* translators: %d: seconds between the signature's time and now. */
				sprintf( __( 'The signature is %d seconds away from this server\'s clock (a replay, or clocks out of sync).', 'realtime-events' ), abs( $now - $t ) )
			);
		}
		return true;
	}

	/**
	 * Parses a body.
	 *
	 * @param string $body Raw body.
	 * @return array{time_ms:int,events:array}|WP_Error
	 */
	public static function parse( $body ) {
		$data = json_decode( $body, true );
		if ( ! is_array( $data ) || ! isset( $data['events'] ) || ! is_array( $data['events'] ) ) {
			return new WP_Error( 'realtime_events_webhook_bad_body', __( 'The body is not {"time_ms":..., "events":[...]}.', 'realtime-events' ) );
		}
		$time_ms = isset( $data['time_ms'] ) && is_numeric( $data['time_ms'] ) ? (int) $data['time_ms'] : (int) round( microtime( true ) * 1000 );
		return array(
			'time_ms' => $time_ms,
			'events'  => array_values( $data['events'] ),
		);
	}

	/**
	 * Whether an event is well-formed enough to be passed on (its name becomes part of an
	 * action name).
	 *
	 * @param mixed $event Event.
	 * @return bool
	 */
	public static function valid_event( $event ) {
		return is_array( $event ) && isset( $event['name'] ) && is_string( $event['name'] ) && 1 === preg_match( '/^[a-z][a-z0-9_]{0,63}$/', $event['name'] )
			&& ( ! isset( $event['id'] ) || ( is_string( $event['id'] ) && '' !== $event['id'] && strlen( $event['id'] ) <= 128 ) );
	}

	/**
	 * Records an event id; false when it was already there (a duplicate).
	 *
	 * @param string $id  Event id.
	 * @param int    $now Unix time.
	 * @return bool
	 */
	public static function claim( $id, $now ) {
		global $wpdb;
		$table = self::table();
		// One statement: two deliveries of one event at the same time cannot both win.
		$rows = $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$table} (event_id, seen_at) VALUES (%s, %d)", $id, $now ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		return 1 === $rows;
	}

	/**
	 * Forgets an event id (its handler failed: the retry must run it).
	 *
	 * @param string $id Event id.
	 */
	public static function forget( $id ) {
		global $wpdb;
		$wpdb->delete( self::table(), array( 'event_id' => $id ), array( '%s' ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
	}

	/**
	 * Drops ids older than the deduplication window.
	 *
	 * @param int $now Unix time.
	 */
	public static function prune( $now ) {
		global $wpdb;
		$table = self::table();
		/**
		 * Filters how long webhook event ids are kept to drop duplicates (seconds, default
		 * 7200; the hub retries a delivery for up to an hour).
		 *
		 * @param int $seconds Seconds.
		 */
		$keep = max( 60, (int) apply_filters( 'realtime_events_webhook_keep_ids', self::KEEP_IDS ) );
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE seen_at < %d", $now - $keep ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * REST callback.
	 *
	 * @param WP_REST_Request $request Request.
	 * @return WP_REST_Response
	 */
	public static function rest_receive( $request ) {
		$answer   = self::receive( (string) $request->get_body(), (string) $request->get_header( self::HEADER ), (string) $request->get_header( 'content_type' ) );
		$response = new WP_REST_Response( $answer['body'], $answer['status'] );
		$response->header( 'Cache-Control', 'no-store' );
		return $response;
	}

	/**
	 * Handles one delivery.
	 *
	 * @param string   $body         Raw body.
	 * @param string   $signature    X-Realtime-Signature.
	 * @param string   $content_type Content-Type.
	 * @param int|null $now          Unix time.
	 * @return array{status:int,body:array}
	 */
	public static function receive( $body, $signature, $content_type, $now = null ) {
		$now = null === $now ? time() : (int) $now;
		if ( strlen( $body ) > self::MAX_BODY ) {
			return self::refuse( 413, new WP_Error( 'realtime_events_webhook_too_large', __( 'The body is larger than 1 MiB.', 'realtime-events' ) ), $now );
		}
		$verified = self::verify( $signature, $body, Realtime_Events_Config::webhook_secret(), $now );
		if ( is_wp_error( $verified ) ) {
			return self::refuse( 401, $verified, $now );
		}
		if ( 0 !== stripos( trim( $content_type ), 'application/json' ) ) {
			return self::refuse( 415, new WP_Error( 'realtime_events_webhook_content_type', __( 'Content-Type must be application/json.', 'realtime-events' ) ), $now );
		}
		$parsed = self::parse( $body );
		if ( is_wp_error( $parsed ) ) {
			return self::refuse( 400, $parsed, $now );
		}

		$counts = array(
			'received'   => count( $parsed['events'] ),
			'processed'  => 0,
			'duplicates' => 0,
			'ignored'    => 0,
		);
		foreach ( $parsed['events'] as $event ) {
			if ( ! self::valid_event( $event ) ) {
				++$counts['ignored'];
				continue;
			}
			$id = isset( $event['id'] ) ? $event['id'] : '';
			if ( '' !== $id && ! self::claim( $id, $now ) ) {
				++$counts['duplicates'];
				continue;
			}
			try {
				self::dispatch( $event, $parsed['time_ms'] );
			} catch ( Throwable $e ) {
				if ( '' !== $id ) {
					self::forget( $id );
				}
				$error = new WP_Error(
					'realtime_events_webhook_handler_failed',
					/* translators: 1: event name, 2: error message. */
					sprintf( __( 'A handler of %1$s failed: %2$s', 'realtime-events' ), $event['name'], $e->getMessage() )
				);
				return self::refuse( 500, $error, $now, $counts );
			}
			++$counts['processed'];
		}
		self::prune( $now );
		self::record( $now, null, $counts );
		/**
		 * Fires after a delivery from the hub was handled (its events' actions have run).
		 *
		 * @param array $counts received, processed, duplicates, ignored.
		 */
		do_action( 'realtime_events_webhook_received', $counts );
		return array(
			'status' => 200,
			'body'   => array_merge( array( 'status' => 'ok' ), $counts ),
		);
	}

	/**
	 * Fires the actions of one event.
	 *
	 * @param array $event   Event.
	 * @param int   $time_ms The batch's time_ms.
	 */
	public static function dispatch( array $event, $time_ms ) {
		/**
		 * Fires for every webhook event from the hub, once per event id (duplicates are
		 * dropped). $event is as the hub sent it: name, channel, user_id (member events),
		 * id, and for client events event, data, socket_id.
		 *
		 * @param array $event   Event.
		 * @param int   $time_ms When the hub created the batch (Unix milliseconds).
		 */
		do_action( 'realtime_events_webhook', $event, $time_ms );
		/**
		 * Fires for webhook events named {$name}: channel_occupied, channel_vacated,
		 * member_added, member_removed, client_event.
		 *
		 * @param array $event   Event.
		 * @param int   $time_ms When the hub created the batch (Unix milliseconds).
		 */
		do_action( 'realtime_events_webhook_' . $event['name'], $event, $time_ms );
	}

	/**
	 * A refusal, recorded for the settings page.
	 *
	 * @param int      $status HTTP status.
	 * @param WP_Error $error  Why.
	 * @param int      $now    Unix time.
	 * @param array    $counts Counts so far.
	 * @return array{status:int,body:array}
	 */
	private static function refuse( $status, WP_Error $error, $now, array $counts = array() ) {
		self::record( $now, $error, $counts );
		return array(
			'status' => $status,
			'body'   => array_merge(
				array(
					'status'  => 'error',
					'code'    => $error->get_error_code(),
					'message' => $error->get_error_message(),
				),
				$counts
			),
		);
	}

	/**
	 * Remembers the last delivery and the last refusal (Settings -> Realtime Events).
	 *
	 * @param int           $now    Unix time.
	 * @param WP_Error|null $error  Refusal, or null for a delivery.
	 * @param array         $counts Counts.
	 */
	private static function record( $now, $error, array $counts ) {
		$status = self::status();
		if ( $error ) {
			$status['last_error'] = array(
				'time'    => $now,
				'code'    => $error->get_error_code(),
				'message' => Realtime_Events_Transport::shorten( $error->get_error_message() ),
			);
		} else {
			$status['last_ok'] = array(
				'time'   => $now,
				'events' => isset( $counts['received'] ) ? (int) $counts['received'] : 0,
			);
			$status['deliveries'] = (int) $status['deliveries'] + 1;
		}
		update_option( self::STATUS_OPTION, $status, false );
	}

	/**
	 * What the settings page shows.
	 *
	 * @return array{last_ok:array|null,last_error:array|null,deliveries:int}
	 */
	public static function status() {
		$status = get_option( self::STATUS_OPTION );
		return wp_parse_args(
			is_array( $status ) ? $status : array(),
			array(
				'last_ok'    => null,
				'last_error' => null,
				'deliveries' => 0,
			)
		);
	}
}
