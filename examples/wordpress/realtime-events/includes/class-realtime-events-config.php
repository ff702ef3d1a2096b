<?php
/**
 * Configuration: read from wp-config.php constants, never stored in the database.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Reads the REALTIME_EVENTS_* constants and derives defaults.
 */
class Realtime_Events_Config {

	/** Default name of the HttpOnly token cookie (must match `token_cookie` in the Caddyfile). */
	const DEFAULT_TOKEN_COOKIE = 'realtime_token';

	/** Default lifetime of a subscriber token, in seconds. */
	const DEFAULT_TOKEN_TTL = 600;

	/**
	 * Value of a constant, or null when it is not defined.
	 *
	 * @param string $name Constant name.
	 * @return mixed|null
	 */
	public static function constant( $name ) {
		return defined( $name ) ? constant( $name ) : null;
	}

	/**
	 * The `secret` of `realtime_broadcast` (HMAC key of the publish signature).
	 *
	 * @return string Empty when not configured.
	 */
	public static function secret() {
		$secret = self::constant( 'REALTIME_EVENTS_SECRET' );
		return is_string( $secret ) ? $secret : '';
	}

	/**
	 * The `token_secret` of `realtime_ws` (HS256 key of subscriber tokens).
	 *
	 * @return string Empty when private channels are off.
	 */
	public static function token_secret() {
		$secret = self::constant( 'REALTIME_EVENTS_TOKEN_SECRET' );
		return is_string( $secret ) ? $secret : '';
	}

	/**
	 * The `secret` of the hub's `webhook` (HMAC key of the webhook signature).
	 *
	 * REALTIME_EVENTS_WEBHOOK_SECRET when defined, else REALTIME_EVENTS_SECRET: the same two
	 * parties (WordPress and Caddy) hold both, and a body signed for one direction cannot be
	 * taken for the other (a publish has no `events`, a webhook no `type`), so one secret is
	 * enough; a dedicated one lets the two be rotated apart.
	 *
	 * @return string Empty when neither is defined (webhooks are then refused).
	 */
	public static function webhook_secret() {
		return self::pick_webhook_secret( self::constant( 'REALTIME_EVENTS_WEBHOOK_SECRET' ), self::secret() );
	}

	/**
	 * Which secret verifies webhooks: the dedicated one when it is a non-empty string.
	 *
	 * @param mixed  $webhook The value of REALTIME_EVENTS_WEBHOOK_SECRET (null when undefined).
	 * @param string $publish The publish secret.
	 * @return string
	 */
	public static function pick_webhook_secret( $webhook, $publish ) {
		if ( is_string( $webhook ) && '' !== $webhook ) {
			return $webhook;
		}
		return is_string( $publish ) ? $publish : '';
	}

	/**
	 * Name of the constant whose value verifies webhooks, for the settings page.
	 *
	 * @return string REALTIME_EVENTS_WEBHOOK_SECRET, REALTIME_EVENTS_SECRET or '' (none).
	 */
	public static function webhook_secret_source() {
		$webhook = self::constant( 'REALTIME_EVENTS_WEBHOOK_SECRET' );
		if ( is_string( $webhook ) && '' !== $webhook ) {
			return 'REALTIME_EVENTS_WEBHOOK_SECRET';
		}
		return '' !== self::secret() ? 'REALTIME_EVENTS_SECRET' : '';
	}

	/**
	 * URL of the publish endpoint. Default: this site's origin + /realtime/broadcast.
	 *
	 * @return string
	 */
	public static function broadcast_url() {
		$url = self::constant( 'REALTIME_EVENTS_BROADCAST_URL' );
		if ( ! is_string( $url ) || '' === trim( $url ) ) {
			$url = self::site_origin( false ) . '/realtime/broadcast';
		}
		/**
		 * Filters the URL events are POSTed to.
		 *
		 * @param string $url Publish endpoint URL.
		 */
		return (string) apply_filters( 'realtime_events_broadcast_url', trim( $url ) );
	}

	/**
	 * Whether REALTIME_EVENTS_BROADCAST_URL is defined (otherwise the default is used).
	 *
	 * @return bool
	 */
	public static function broadcast_url_is_default() {
		$url = self::constant( 'REALTIME_EVENTS_BROADCAST_URL' );
		return ! is_string( $url ) || '' === trim( $url );
	}

	/**
	 * WebSocket URL the browser connects to.
	 * Default: the site's own host and /realtime/ws, wss:// on https and ws:// on http.
	 *
	 * @return string
	 */
	public static function ws_url() {
		$url = self::constant( 'REALTIME_EVENTS_WS_URL' );
		if ( ! is_string( $url ) || '' === trim( $url ) ) {
			$url = self::site_origin( true ) . '/realtime/ws';
		}
		/**
		 * Filters the WebSocket URL given to the browser client.
		 *
		 * @param string $url WebSocket URL.
		 */
		return (string) apply_filters( 'realtime_events_ws_url', trim( $url ) );
	}

	/**
	 * Name of the HttpOnly cookie that carries the subscriber token.
	 *
	 * @return string
	 */
	public static function token_cookie() {
		$name = self::constant( 'REALTIME_EVENTS_TOKEN_COOKIE' );
		if ( ! is_string( $name ) || ! preg_match( '/^[A-Za-z0-9_\-]{1,64}$/', $name ) ) {
			$name = self::DEFAULT_TOKEN_COOKIE;
		}
		return $name;
	}

	/**
	 * Name of the companion cookie readable by scripts: expiry and channels of the token,
	 * never the token itself.
	 *
	 * @return string
	 */
	public static function token_meta_cookie() {
		return self::token_cookie() . '_meta';
	}

	/**
	 * Lifetime of subscriber tokens in seconds (60 .. 86400).
	 *
	 * @return int
	 */
	public static function token_ttl() {
		/**
		 * Filters the lifetime of subscriber tokens, in seconds.
		 *
		 * @param int $ttl Seconds (default 600).
		 */
		$ttl = (int) apply_filters( 'realtime_events_token_ttl', self::DEFAULT_TOKEN_TTL );
		return max( 60, min( DAY_IN_SECONDS, $ttl ) );
	}

	/**
	 * True when events can be sent (a secret is configured).
	 *
	 * @return bool
	 */
	public static function can_publish() {
		return '' !== self::secret();
	}

	/**
	 * True when logged-in users get tokens for private channels.
	 *
	 * @return bool
	 */
	public static function has_private_channels() {
		return '' !== self::token_secret();
	}

	/**
	 * Scheme, host and port of the site (home_url), with ws/wss when asked.
	 *
	 * @param bool $websocket Map http->ws and https->wss.
	 * @return string e.g. "wss://example.com" or "http://127.0.0.1:8080".
	 */
	public static function site_origin( $websocket ) {
		$home   = home_url( '/' );
		$parts  = wp_parse_url( $home );
		$scheme = isset( $parts['scheme'] ) ? strtolower( $parts['scheme'] ) : 'http';
		if ( is_ssl() ) {
			$scheme = 'https';
		}
		$host = isset( $parts['host'] ) ? $parts['host'] : 'localhost';
		$port = isset( $parts['port'] ) ? ':' . (int) $parts['port'] : '';
		if ( $websocket ) {
			$scheme = 'https' === $scheme ? 'wss' : 'ws';
		}
		return $scheme . '://' . $host . $port;
	}

	/**
	 * A masked view of a secret for display: never any character of it.
	 *
	 * @param string $secret Secret.
	 * @return string
	 */
	public static function mask( $secret ) {
		if ( '' === $secret ) {
			return '';
		}
		return str_repeat( '•', 8 ) . ' (' . sprintf(
			/* translators: %d: number of characters of a secret. */
			_n( '%d character', '%d characters', strlen( $secret ), 'realtime-events' ),
			strlen( $secret )
		) . ')';
	}
}
