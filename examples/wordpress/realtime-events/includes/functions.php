<?php
/**
 * Public API of the plugin.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

if ( ! function_exists( 'realtime_events_publish' ) ) {
	/**
	 * Queues an event for the hub. It is written to the outbox table and sent at the end
	 * of this request (after the response went out) or, if the hub is unreachable then, by
	 * the one-minute WP-Cron drain, with retries until the hub answers 200.
	 *
	 *     realtime_events_publish( 'private-user.42', 'order_shipped', array( 'title' => 'Your order shipped' ) );
	 *
	 * @param string $channel Channel name (1..128 of A-Z a-z 0-9 . _ - : @ =).
	 * @param string $type    Event type (1..64 characters, not starting with "realtime:").
	 * @param mixed  $payload JSON-encodable payload; null sends none. `title` and `message`
	 *                        are what the notification area shows (as text).
	 * @param array  $context Free-form context for the realtime_events_before_publish filter.
	 * @return string|false|WP_Error The event id (UUID) when queued, false when a filter
	 *                               vetoed it, WP_Error when it is invalid or cannot be stored.
	 */
	function realtime_events_publish( $channel, $type, $payload = null, $context = array() ) {
		$event = array(
			'channel' => $channel,
			'type'    => $type,
			'payload' => $payload,
		);
		/**
		 * Filters an event before it is queued. Return false (or anything that is not an
		 * array) to drop it, or a changed array (channel, type, payload) to change it.
		 *
		 * @param array $event   {channel, type, payload}.
		 * @param array $context What produced it: built-in publishers pass source=post|comment
		 *                       and the WP_Post / WP_Comment.
		 */
		$event = apply_filters( 'realtime_events_before_publish', $event, (array) $context );
		if ( ! is_array( $event ) ) {
			return false;
		}
		$event = wp_parse_args(
			$event,
			array(
				'channel' => $channel,
				'type'    => $type,
				'payload' => null,
			)
		);
		$id = Realtime_Events_Outbox::enqueue( $event['channel'], $event['type'], $event['payload'] );
		if ( is_wp_error( $id ) ) {
			Realtime_Events_Plugin::instance()->log_error( $id );
			return $id;
		}
		Realtime_Events_Plugin::instance()->queued( $id );
		/**
		 * Fires after an event was written to the outbox.
		 *
		 * @param string $id    Event id (UUID).
		 * @param array  $event {channel, type, payload}.
		 */
		do_action( 'realtime_events_queued', $id, $event );
		return $id;
	}
}

if ( ! function_exists( 'realtime_events_drain' ) ) {
	/**
	 * Sends due outbox events now (what the cron drain does). For WP-CLI: `wp eval 'realtime_events_drain();'`.
	 *
	 * @param float $budget Seconds to spend at most.
	 * @return array{sent:int,failed:int,batches:int,error:string}
	 */
	function realtime_events_drain( $budget = 20.0 ) {
		return Realtime_Events_Outbox::drain( $budget, 'manual' );
	}
}

if ( ! function_exists( 'realtime_events_online' ) ) {
	/**
	 * Who is online in presence channels, as the hub's webhooks reported it (what the
	 * "Online now" dashboard widget shows).
	 *
	 *     $online = realtime_events_online();
	 *     // array( 'presence-post.7' => array( 'users' => array( '42' ), 'anonymous' => 3, 'since' => 1733300000000 ) )
	 *
	 * @return array<string, array{users:string[],anonymous:int,since:int}> Per channel: the user
	 *         ids present (anonymous visitors only counted) and the earliest join time (Unix ms).
	 */
	function realtime_events_online() {
		return Realtime_Events_Online::channels();
	}
}
