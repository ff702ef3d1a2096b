<?php
/**
 * Who is online in which presence channel, as the hub's webhooks tell it.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * A table of (channel, member) rows fed by member_added, member_removed and channel_vacated
 * webhook events, for the "Online now" dashboard widget and for code that asks
 * realtime_events_online().
 *
 * Webhooks arrive at least once and a retried batch may come after a newer one, so every
 * row remembers the batch time (time_ms) of the event that last changed it and an older
 * event never overrides a newer one; a removal leaves a row with present=0 for KEEP_GONE
 * seconds so that a late duplicate "added" cannot revive it. A member that no event removed
 * (a lost webhook, a site restored from a backup) is forgotten after TTL seconds.
 */
class Realtime_Events_Online {

	const DB_VERSION = '1';
	const DB_OPTION  = 'realtime_events_online_db_version';

	/** Seconds after which a member nobody removed is forgotten. */
	const TTL = DAY_IN_SECONDS;

	/** Seconds a removal is remembered (longer than the hub's retries). */
	const KEEP_GONE = 7200;

	/**
	 * Table name (per site on multisite).
	 *
	 * @return string
	 */
	public static function table() {
		global $wpdb;
		return $wpdb->prefix . 'realtime_events_online';
	}

	/**
	 * Creates or upgrades the table with dbDelta. The primary key is a hash of channel and
	 * member id: their full lengths would not fit an index on older MySQL.
	 */
	public static function install() {
		global $wpdb;
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$table   = self::table();
		$charset = $wpdb->get_charset_collate();
		dbDelta(
			"CREATE TABLE {$table} (
  member_key char(40) NOT NULL,
  channel varchar(164) NOT NULL,
  user_id varchar(128) NOT NULL,
  present tinyint(1) NOT NULL DEFAULT 1,
  changed_ms bigint(20) unsigned NOT NULL,
  PRIMARY KEY  (member_key),
  KEY channel (channel(100)),
  KEY changed_ms (changed_ms)
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
	 * Hooks: the state follows the webhook events (before other handlers run).
	 */
	public static function register() {
		add_action( 'realtime_events_webhook', array( __CLASS__, 'apply' ), 5, 2 );
		add_action( 'realtime_events_webhook_received', array( __CLASS__, 'prune' ), 10, 0 );
	}

	/**
	 * Applies one webhook event.
	 *
	 * @param array $event   Event: name, channel, user_id.
	 * @param int   $time_ms The batch's time.
	 */
	public static function apply( $event, $time_ms = 0 ) {
		if ( ! is_array( $event ) || ! isset( $event['name'], $event['channel'] ) || ! is_string( $event['channel'] ) || '' === $event['channel'] || strlen( $event['channel'] ) > 164 ) {
			return;
		}
		$time_ms = (int) $time_ms > 0 ? (int) $time_ms : self::now_ms();
		$user    = isset( $event['user_id'] ) && is_scalar( $event['user_id'] ) ? (string) $event['user_id'] : '';
		switch ( $event['name'] ) {
			case 'member_added':
			case 'member_removed':
				if ( '' !== $user && strlen( $user ) <= 128 ) {
					self::set( $event['channel'], $user, 'member_added' === $event['name'], $time_ms );
				}
				break;
			case 'channel_vacated':
				self::vacate( $event['channel'], $time_ms );
				break;
		}
	}

	/**
	 * Marks a member present or gone, unless a newer event already changed it.
	 *
	 * @param string $channel Channel.
	 * @param string $user_id Member id.
	 * @param bool   $present Present.
	 * @param int    $time_ms Time of the event.
	 */
	public static function set( $channel, $user_id, $present, $time_ms ) {
		global $wpdb;
		$table = self::table();
		// `present` is assigned before `changed_ms`: MySQL evaluates the assignments in
		// order, so the comparison still sees the row's old time. Equal times: the later
		// event of one batch wins (a batch lists its events in order).
		$wpdb->query( // phpcs:ignore WordPress.DB.DirectDatabaseQuery
			$wpdb->prepare(
				"INSERT INTO {$table} (member_key, channel, user_id, present, changed_ms) VALUES (%s, %s, %s, %d, %d)
				ON DUPLICATE KEY UPDATE present = IF(VALUES(changed_ms) >= changed_ms, VALUES(present), present), changed_ms = GREATEST(changed_ms, VALUES(changed_ms))", // phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared
				self::key( $channel, $user_id ),
				$channel,
				$user_id,
				$present ? 1 : 0,
				$time_ms
			)
		);
	}

	/**
	 * A channel lost its last member: everyone in it is gone.
	 *
	 * @param string $channel Channel.
	 * @param int    $time_ms Time of the event.
	 */
	public static function vacate( $channel, $time_ms ) {
		global $wpdb;
		$table = self::table();
		$wpdb->query( $wpdb->prepare( "UPDATE {$table} SET present = 0, changed_ms = %d WHERE channel = %s AND changed_ms <= %d", $time_ms, $channel, $time_ms ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * Seconds after which an unremoved member is forgotten.
	 *
	 * @return int
	 */
	public static function ttl() {
		/**
		 * Filters how long a member that no webhook removed stays "online" (seconds,
		 * default one day).
		 *
		 * @param int $seconds Seconds.
		 */
		return max( 60, (int) apply_filters( 'realtime_events_online_ttl', self::TTL ) );
	}

	/**
	 * Deletes removals older than KEEP_GONE and members older than ttl().
	 *
	 * @param int|null $now_ms Unix milliseconds.
	 */
	public static function prune( $now_ms = null ) {
		global $wpdb;
		$table  = self::table();
		$now_ms = null === $now_ms ? self::now_ms() : (int) $now_ms;
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE (present = 0 AND changed_ms < %d) OR changed_ms < %d", $now_ms - self::KEEP_GONE * 1000, $now_ms - self::ttl() * 1000 ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
	}

	/**
	 * Who is online, per channel.
	 *
	 * @param int|null $now_ms Unix milliseconds.
	 * @return array<string, array{users:string[],anonymous:int,since:int}> Channel => member ids
	 *         of users (oldest first; anonymous visitors only counted), earliest time_ms.
	 */
	public static function channels( $now_ms = null ) {
		global $wpdb;
		$table  = self::table();
		$now_ms = null === $now_ms ? self::now_ms() : (int) $now_ms;
		$rows   = $wpdb->get_results( $wpdb->prepare( "SELECT channel, user_id, changed_ms FROM {$table} WHERE present = 1 AND changed_ms >= %d ORDER BY channel, changed_ms, user_id", $now_ms - self::ttl() * 1000 ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery, WordPress.DB.PreparedSQL.InterpolatedNotPrepared
		$out    = array();
		foreach ( (array) $rows as $row ) {
			if ( ! isset( $out[ $row->channel ] ) ) {
				$out[ $row->channel ] = array(
					'users'     => array(),
					'anonymous' => 0,
					'since'     => (int) $row->changed_ms,
				);
			}
			if ( Realtime_Events_Presence::is_anonymous_id( $row->user_id ) ) {
				++$out[ $row->channel ]['anonymous'];
			} else {
				$out[ $row->channel ]['users'][] = $row->user_id;
			}
		}
		return $out;
	}

	/**
	 * Primary key of a row.
	 *
	 * @param string $channel Channel.
	 * @param string $user_id Member id.
	 * @return string
	 */
	private static function key( $channel, $user_id ) {
		return sha1( $channel . "\n" . $user_id );
	}

	/**
	 * Now in Unix milliseconds.
	 *
	 * @return int
	 */
	public static function now_ms() {
		return (int) round( microtime( true ) * 1000 );
	}
}
