<?php
/**
 * The outbox: every event is a row first, and leaves the table only after the hub said 200.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Outbox table, atomic claiming, delivery and retry with backoff.
 *
 * Life of a row: enqueue() inserts it with a UUID (the event `id`, the hub's idempotency
 * key) and next_attempt_at = now. drain() claims due rows with one UPDATE ... LIMIT (so two
 * drains running at once never get the same row), POSTs them as one signed batch, deletes
 * them on success and otherwise releases them with attempts+1 and a jittered, doubling
 * delay (about 10 s, 20 s, 40 s ... at most 5 minutes). A claim is a lease: rows claimed by a
 * PHP process that died become due again after LEASE seconds; a resend is then answered
 * `duplicate:true` by the hub, so subscribers still see the event once.
 */
class Realtime_Events_Outbox {

	const DB_VERSION    = '1';
	const DB_OPTION     = 'realtime_events_db_version';
	const ERROR_OPTION  = 'realtime_events_last_error';
	const OK_OPTION     = 'realtime_events_last_success';
	const CRON_HOOK     = 'realtime_events_drain';
	const SCHEDULE      = 'realtime_events_every_minute';
	const LEASE         = 120;
	const BACKOFF_BASE  = 10;
	const BACKOFF_CAP   = 300;
	const MAX_BATCH     = 50;
	const MAX_BATCH_LEN = 49152;
	const MAX_EVENT_LEN = 60000;

	/**
	 * Table name (per site on multisite).
	 *
	 * @return string
	 */
	public static function table() {
		global $wpdb;
		return $wpdb->prefix . 'realtime_events_outbox';
	}

	/**
	 * Creates or upgrades the table with dbDelta.
	 */
	public static function install() {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::table();
		$charset = $wpdb->get_charset_collate();
		// dbDelta wants one column per line and two spaces after PRIMARY KEY.
		$sql = "CREATE TABLE {$table} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  event_id char(36) NOT NULL,
  channel varchar(128) NOT NULL,
  type varchar(64) NOT NULL,
  payload longtext NULL,
  created_at bigint(20) unsigned NOT NULL,
  attempts int(10) unsigned NOT NULL DEFAULT 0,
  next_attempt_at bigint(20) unsigned NOT NULL,
  claim_id varchar(36) NOT NULL DEFAULT '',
  claim_expires bigint(20) unsigned NOT NULL DEFAULT 0,
  last_error varchar(500) NOT NULL DEFAULT '',
  PRIMARY KEY  (id),
  UNIQUE KEY event_id (event_id),
  KEY next_attempt_at (next_attempt_at),
  KEY claim_id (claim_id)
) {$charset};";
		dbDelta( $sql );
		update_option( self::DB_OPTION, self::DB_VERSION, true ); // autoloaded: read on every request
	}

	/**
	 * Installs the table when the stored schema version differs (upgrades, new multisite sites).
	 */
	public static function maybe_install() {
		if ( get_option( self::DB_OPTION ) !== self::DB_VERSION ) {
			self::install();
		}
	}

	/**
	 * Channel names the hub accepts: 1..128 of A-Z a-z 0-9 . _ - : @ =
	 *
	 * @param mixed $channel Channel.
	 * @return bool
	 */
	public static function valid_channel( $channel ) {
		return is_string( $channel ) && 1 === preg_match( '/^[A-Za-z0-9._\-:@=]{1,128}$/', $channel );
	}

	/**
	 * Event types the hub accepts: 1..64 characters, not starting with "realtime:".
	 *
	 * @param mixed $type Type.
	 * @return bool
	 */
	public static function valid_type( $type ) {
		if ( ! is_string( $type ) || '' === $type || 0 === strpos( $type, 'realtime:' ) ) {
			return false;
		}
		if ( function_exists( 'mb_check_encoding' ) && ! mb_check_encoding( $type, 'UTF-8' ) ) {
			return false;
		}
		$len = function_exists( 'mb_strlen' ) ? mb_strlen( $type, 'UTF-8' ) : strlen( $type );
		return $len <= 64 && strlen( $type ) <= 255;
	}

	/**
	 * Writes one event to the outbox (no filters: see realtime_events_publish()).
	 *
	 * @param string $channel Channel.
	 * @param string $type    Event type.
	 * @param mixed  $payload Any JSON-encodable value; null means "no payload".
	 * @param int    $now     Unix time.
	 * @return string|WP_Error Event id (UUID v4).
	 */
	public static function enqueue( $channel, $type, $payload = null, $now = null ) {
		global $wpdb;
		if ( ! self::valid_channel( $channel ) ) {
			return new WP_Error( 'realtime_events_bad_channel', __( 'Channel names are 1 to 128 characters of A-Z a-z 0-9 . _ - : @ =', 'realtime-events' ) );
		}
		if ( ! self::valid_type( $type ) ) {
			return new WP_Error( 'realtime_events_bad_type', __( 'Event types are 1 to 64 characters and must not start with "realtime:".', 'realtime-events' ) );
		}
		$json = null;
		if ( null !== $payload ) {
			$json = wp_json_encode( $payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE );
			if ( false === $json ) {
				return new WP_Error( 'realtime_events_bad_payload', __( 'The payload cannot be encoded as JSON.', 'realtime-events' ) );
			}
			if ( strlen( $json ) > self::MAX_EVENT_LEN ) {
				return new WP_Error( 'realtime_events_too_big', __( 'The payload is larger than 60 KB.', 'realtime-events' ) );
			}
		}
		$now = null === $now ? time() : (int) $now;
		$id  = wp_generate_uuid4();
		$ok  = $wpdb->insert( // phpcs:ignore WordPress.DB.DirectDatabaseQuery.DirectQuery
			self::table(),
			array(
				'event_id'        => $id,
				'channel'         => $channel,
				'type'            => $type,
				'payload'         => $json,
				'created_at'      => $now,
				'attempts'        => 0,
				'next_attempt_at' => $now,
				'claim_id'        => '',
				'claim_expires'   => 0,
				'last_error'      => '',
			),
			array( '%s', '%s', '%s', '%s', '%d', '%d', '%d', '%s', '%d', '%s' )
		);
		if ( ! $ok ) {
			return new WP_Error( 'realtime_events_db', __( 'The event could not be written to the outbox table.', 'realtime-events' ) . ' ' . $wpdb->last_error );
		}
		return $id;
	}

	/**
	 * Atomically claims up to $limit due rows for $claim_id and returns them.
	 *
	 * A single UPDATE ... ORDER BY id LIMIT n takes InnoDB row locks and re-checks the WHERE
	 * clause on rows another transaction changed, so a row is claimed by one drain only.
	 *
	 * @param string $claim_id Unique id of this claim.
	 * @param int    $limit    Max rows.
	 * @param int    $now      Unix time.
	 * @return array<object> Rows ordered by id.
	 */
	public static function claim( $claim_id, $limit = self::MAX_BATCH, $now = null ) {
		global $wpdb;
		$now   = null === $now ? time() : (int) $now;
		$table = self::table();
		// phpcs:disable WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		$claimed = self::query(
			$wpdb->prepare(
				"UPDATE {$table} SET claim_id = %s, claim_expires = %d
				 WHERE next_attempt_at <= %d AND ( claim_id = '' OR claim_expires < %d )
				 ORDER BY id ASC LIMIT %d",
				$claim_id,
				$now + self::LEASE,
				$now,
				$now,
				max( 1, (int) $limit )
			)
		);
		if ( ! $claimed ) {
			return array();
		}
		$rows = $wpdb->get_results(
			$wpdb->prepare( "SELECT * FROM {$table} WHERE claim_id = %s ORDER BY id ASC", $claim_id )
		);
		// phpcs:enable
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Runs a write query, retrying when InnoDB picked it as a deadlock victim or a lock
	 * wait timed out (concurrent drains do that now and then; the statement was rolled
	 * back as a whole, so running it again is safe).
	 *
	 * @param string $sql Prepared SQL.
	 * @return int|false Affected rows, or false after the last failure.
	 */
	private static function query( $sql ) {
		global $wpdb;
		for ( $try = 1; ; $try++ ) {
			$suppress = $wpdb->suppress_errors( true );
			$result   = $wpdb->query( $sql ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.NotPrepared
			$error    = $wpdb->last_error;
			$wpdb->suppress_errors( $suppress );
			if ( false !== $result ) {
				return $result;
			}
			if ( $try >= 5 || ! preg_match( '/deadlock|lock wait timeout/i', $error ) ) {
				update_option(
					self::ERROR_OPTION,
					array(
						'time'    => time(),
						/* translators: %s: database error. */
						'message' => sprintf( __( 'Database error: %s', 'realtime-events' ), Realtime_Events_Transport::shorten( $error ) ),
					),
					false
				);
				return false;
			}
			usleep( wp_rand( 2000, 20000 ) * $try );
		}
	}

	/**
	 * The event object sent to the hub for a row.
	 *
	 * @param object $row Outbox row.
	 * @return array
	 */
	public static function event_from_row( $row ) {
		$event = array(
			'id'        => $row->event_id,
			'channel'   => $row->channel,
			'type'      => $row->type,
			'timestamp' => gmdate( 'Y-m-d\TH:i:s\Z', (int) $row->created_at ),
		);
		if ( null !== $row->payload ) {
			$event['payload'] = json_decode( $row->payload, true );
		}
		return $event;
	}

	/**
	 * The JSON array sent for rows. Payloads are spliced in as stored (valid JSON written by
	 * enqueue()), so `{}` stays an object and numbers keep their digits.
	 *
	 * @param array<object> $rows Rows.
	 * @return string
	 */
	public static function body( array $rows ) {
		$parts = array();
		foreach ( $rows as $row ) {
			$json = (string) wp_json_encode(
				array(
					'id'        => $row->event_id,
					'channel'   => $row->channel,
					'type'      => $row->type,
					'timestamp' => gmdate( 'Y-m-d\TH:i:s\Z', (int) $row->created_at ),
				),
				JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
			);
			if ( null !== $row->payload ) {
				$json = substr( $json, 0, -1 ) . ',"payload":' . $row->payload . '}';
			}
			$parts[] = $json;
		}
		return '[' . implode( ',', $parts ) . ']';
	}

	/**
	 * Delay before the next attempt after $attempts failures: 10 s doubling, capped at
	 * 5 minutes, with +-25 % jitter (never above the cap).
	 *
	 * @param int        $attempts Failures so far (>= 1).
	 * @param float|null $rand     Random number in [0,1) (tests pass one).
	 * @return int Seconds.
	 */
	public static function backoff_delay( $attempts, $rand = null ) {
		$attempts = max( 1, (int) $attempts );
		$rand     = null === $rand ? wp_rand( 0, 1000000 ) / 1000001 : (float) $rand;
		$base     = self::BACKOFF_BASE * pow( 2, min( 20, $attempts - 1 ) );
		$delay    = min( self::BACKOFF_CAP, $base ) * ( 0.75 + 0.5 * $rand );
		return (int) max( 1, min( self::BACKOFF_CAP, round( $delay ) ) );
	}

	/**
	 * Delivers due events until none is left, one batch fails, or the time budget is used.
	 *
	 * @param float  $budget  Seconds to spend at most (roughly; one request may overrun).
	 * @param string $context cron|shutdown|manual, passed to filters.
	 * @return array{sent:int,failed:int,batches:int,error:string}
	 */
	public static function drain( $budget = 20.0, $context = 'cron' ) {
		$stats = array(
			'sent'    => 0,
			'failed'  => 0,
			'batches' => 0,
			'error'   => '',
		);
		if ( ! Realtime_Events_Config::can_publish() ) {
			$stats['error'] = __( 'REALTIME_EVENTS_SECRET is not defined in wp-config.php.', 'realtime-events' );
			return $stats;
		}
		$deadline = microtime( true ) + $budget;
		/** Filters the number of events per request (the hub's max_batch must be at least this). */
		$limit = max( 1, min( 100, (int) apply_filters( 'realtime_events_batch_size', self::MAX_BATCH, $context ) ) );
		do {
			$rows = self::claim( wp_generate_uuid4(), $limit );
			if ( ! $rows ) {
				break;
			}
			$result = self::deliver( $rows, $context );
			$stats['batches']++;
			$stats['sent']   += $result['sent'];
			$stats['failed'] += $result['failed'];
			if ( $result['failed'] > 0 ) {
				$stats['error'] = $result['error'];
				break; // The hub is probably down: do not hammer it, the rows wait for their backoff.
			}
		} while ( microtime( true ) < $deadline );
		return $stats;
	}

	/**
	 * Sends claimed rows, in chunks that fit the hub's body limit, and settles each row.
	 *
	 * @param array<object> $rows    Claimed rows.
	 * @param string        $context Drain context.
	 * @return array{sent:int,failed:int,error:string}
	 */
	public static function deliver( array $rows, $context = 'cron' ) {
		$out     = array(
			'sent'   => 0,
			'failed' => 0,
			'error'  => '',
		);
		// At shutdown without a way to finish the response first (mod_php), the visitor
		// waits for this request: keep it short there.
		$finishes = function_exists( 'fastcgi_finish_request' ) || function_exists( 'litespeed_finish_request' ) || 'cli' === PHP_SAPI;
		$default  = ( 'shutdown' === $context && ! $finishes ) ? 2.0 : 5.0;
		/**
		 * Filters the timeout of one request to the hub, in seconds.
		 *
		 * @param float  $timeout Seconds (default 5; 2 at shutdown when the response cannot be finished first).
		 * @param string $context cron|shutdown|manual.
		 */
		$timeout = (float) apply_filters( 'realtime_events_http_timeout', $default, $context );
		$chunks  = self::chunk( $rows );
		foreach ( $chunks as $index => $chunk ) {
			$result = self::send_chunk( $chunk, $timeout );
			$out['sent']   += $result['sent'];
			$out['failed'] += $result['failed'];
			if ( $result['failed'] > 0 ) {
				$out['error'] = $result['error'];
				// Give the rows of the chunks not tried back, without counting an attempt.
				$rest = array();
				foreach ( array_slice( $chunks, $index + 1 ) as $later ) {
					foreach ( $later as $row ) {
						$rest[] = (int) $row->id;
					}
				}
				self::release( $rest );
				break;
			}
		}
		return $out;
	}

	/**
	 * Splits rows into request bodies of at most MAX_BATCH_LEN bytes.
	 *
	 * @param array<object> $rows Rows.
	 * @return array<array<object>>
	 */
	private static function chunk( array $rows ) {
		$chunks = array();
		$cur    = array();
		$size   = 2;
		foreach ( $rows as $row ) {
			$len = strlen( (string) $row->payload ) + strlen( $row->channel ) + strlen( $row->type ) + 120;
			if ( $cur && $size + $len > self::MAX_BATCH_LEN ) {
				$chunks[] = $cur;
				$cur      = array();
				$size     = 2;
			}
			$cur[] = $row;
			$size += $len;
		}
		if ( $cur ) {
			$chunks[] = $cur;
		}
		return $chunks;
	}

	/**
	 * POSTs one chunk. A 400/413 answer to a batch is retried event by event, so one event
	 * the hub refuses does not hold back the others.
	 *
	 * @param array<object> $rows    Rows.
	 * @param float         $timeout Seconds.
	 * @return array{sent:int,failed:int,error:string}
	 */
	private static function send_chunk( array $rows, $timeout ) {
		$events = array_map( array( __CLASS__, 'event_from_row' ), $rows );
		$result = Realtime_Events_Transport::post( self::body( $rows ), $timeout );

		if ( $result['ok'] ) {
			self::settle_success( $rows, $events, $result['data'] );
			return array(
				'sent'   => count( $rows ),
				'failed' => 0,
				'error'  => '',
			);
		}
		if ( count( $rows ) > 1 && in_array( $result['code'], array( 400, 413 ), true ) ) {
			$out = array(
				'sent'   => 0,
				'failed' => 0,
				'error'  => '',
			);
			foreach ( $rows as $row ) {
				$one            = self::send_chunk( array( $row ), $timeout );
				$out['sent']   += $one['sent'];
				$out['failed'] += $one['failed'];
				if ( $one['error'] ) {
					$out['error'] = $one['error'];
				}
			}
			return $out;
		}
		self::settle_failure( $rows, $result['error'] );
		return array(
			'sent'   => 0,
			'failed' => count( $rows ),
			'error'  => $result['error'],
		);
	}

	/**
	 * Deletes delivered rows (by primary key: delivered is delivered, whoever holds the
	 * claim now) and fires realtime_events_delivered for each.
	 *
	 * @param array<object> $rows   Rows.
	 * @param array         $events Events as sent.
	 * @param mixed         $answer Decoded hub answer.
	 */
	private static function settle_success( array $rows, array $events, $answer ) {
		global $wpdb;
		$ids = array_map(
			function ( $row ) {
				return (int) $row->id;
			},
			$rows
		);
		$table = self::table();
		self::query( "DELETE FROM {$table} WHERE id IN (" . implode( ',', $ids ) . ')' );
		update_option( self::OK_OPTION, time(), false );

		// The hub answers one entry per channel published to; every event sent here names a
		// single `channel`, so entry $i belongs to event $i.
		$results = is_array( $answer ) && isset( $answer['events'] ) && is_array( $answer['events'] ) ? $answer['events'] : array();
		foreach ( $events as $i => $event ) {
			/**
			 * Fires after the hub accepted an event (HTTP 200), once per event.
			 *
			 * @param array      $event  The event as sent: id, channel, type, timestamp, payload.
			 * @param array|null $result The hub's answer for it ({channel, cursor, duplicate}), when given.
			 */
			do_action( 'realtime_events_delivered', $event, isset( $results[ $i ] ) && is_array( $results[ $i ] ) ? $results[ $i ] : null );
		}
	}

	/**
	 * Releases failed rows with attempts+1 and a backoff, and records the error.
	 *
	 * @param array<object> $rows  Rows.
	 * @param string        $error Error text.
	 */
	private static function settle_failure( array $rows, $error ) {
		global $wpdb;
		$now   = time();
		$table = self::table();
		$error = Realtime_Events_Transport::shorten( $error );
		foreach ( $rows as $row ) {
			$attempts = (int) $row->attempts + 1;
			self::query(
				$wpdb->prepare(
					"UPDATE {$table} SET attempts = %d, next_attempt_at = %d, claim_id = '', claim_expires = 0, last_error = %s WHERE id = %d AND claim_id = %s", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
					$attempts,
					$now + self::backoff_delay( $attempts ),
					substr( $error, 0, 500 ),
					(int) $row->id,
					$row->claim_id
				)
			);
		}
		update_option(
			self::ERROR_OPTION,
			array(
				'time'    => $now,
				'message' => $error,
			),
			false
		);
		/**
		 * Fires when a delivery attempt failed; the events stay in the outbox.
		 *
		 * @param string $error Error text.
		 * @param int    $count Number of events in the failed request.
		 */
		do_action( 'realtime_events_delivery_failed', $error, count( $rows ) );
	}

	/**
	 * Gives claimed rows back without counting an attempt.
	 *
	 * @param int[] $ids Row ids.
	 */
	public static function release( array $ids ) {
		global $wpdb;
		$ids = array_filter( array_map( 'intval', $ids ) );
		if ( ! $ids ) {
			return;
		}
		$table = self::table();
		self::query( "UPDATE {$table} SET claim_id = '', claim_expires = 0 WHERE id IN (" . implode( ',', $ids ) . ')' );
	}

	/**
	 * Backlog figures for the settings page.
	 *
	 * @return array{pending:int,retrying:int,oldest:int|null,next_attempt:int|null,error:string}
	 */
	public static function stats() {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		$row = $wpdb->get_row( "SELECT COUNT(*) AS pending, SUM(attempts > 0) AS retrying, MIN(created_at) AS oldest, MIN(next_attempt_at) AS next_attempt FROM {$table}" );
		return array(
			'pending'      => $row ? (int) $row->pending : 0,
			'retrying'     => $row ? (int) $row->retrying : 0,
			'oldest'       => $row && null !== $row->oldest ? (int) $row->oldest : null,
			'next_attempt' => $row && null !== $row->next_attempt ? (int) $row->next_attempt : null,
			'error'        => (string) $wpdb->last_error,
		);
	}

	/**
	 * Adds the one-minute interval (must run on every request: wp-cron.php reschedules with it).
	 *
	 * @param array $schedules Schedules.
	 * @return array
	 */
	public static function cron_schedules( $schedules ) {
		if ( ! isset( $schedules[ self::SCHEDULE ] ) ) {
			$schedules[ self::SCHEDULE ] = array(
				'interval' => MINUTE_IN_SECONDS,
				'display'  => did_action( 'init' ) ? __( 'Every minute (Realtime Events outbox)', 'realtime-events' ) : 'Every minute (Realtime Events outbox)',
			);
		}
		return $schedules;
	}

	/**
	 * Schedules the recurring drain if it is missing.
	 */
	public static function ensure_scheduled() {
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_event( time(), self::SCHEDULE, self::CRON_HOOK );
		}
	}
}
