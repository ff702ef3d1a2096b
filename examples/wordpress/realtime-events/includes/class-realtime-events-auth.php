<?php
/**
 * Subscriber tokens for logged-in users: HS256 JWT in an HttpOnly cookie.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Issues `{sub, iat, exp, channels:["private-user.<ID>", ...], info:{name, avatar}}` tokens
 * signed with REALTIME_EVENTS_TOKEN_SECRET, in the cookie the hub reads (`token_cookie`).
 * `info` is what other members of presence channels see; the presence channels a user
 * joined (Realtime_Events_Presence) follow the user's own channels and are kept, checked
 * again, whenever the token is renewed.
 *
 * The token never appears in HTML or in a response body: it is set as an HttpOnly,
 * SameSite cookie on responses to the logged-in user, and refreshed through
 * POST /wp-json/realtime-events/v1/token (cookie auth + the REST nonce). A second
 * cookie, readable by scripts, carries only the expiry and the channel names so the
 * page script knows what to subscribe to and when to refresh.
 */
class Realtime_Events_Auth {

	const REST_NAMESPACE = 'realtime-events/v1';
	const REST_ROUTE     = '/token';

	/**
	 * Hooks.
	 */
	public static function register() {
		add_action( 'rest_api_init', array( __CLASS__, 'register_routes' ) );
		add_action( 'init', array( __CLASS__, 'maybe_refresh_cookie' ), 20 );
		add_action( 'set_logged_in_cookie', array( __CLASS__, 'on_login' ), 10, 4 );
		add_action( 'clear_auth_cookie', array( __CLASS__, 'clear_cookies' ) );
	}

	/**
	 * Private channels granted to a user.
	 *
	 * @param int $user_id User id.
	 * @return string[]
	 */
	public static function channels_for( $user_id ) {
		$user_id = (int) $user_id;
		if ( $user_id <= 0 ) {
			return array();
		}
		/**
		 * Filters the channels (names or `*` globs) a logged-in user's token grants.
		 *
		 * @param string[] $channels Default ["private-user.<ID>"].
		 * @param int      $user_id  User id.
		 */
		$channels = (array) apply_filters( 'realtime_events_user_channels', array( 'private-user.' . $user_id ), $user_id );
		return array_values(
			array_filter(
				array_map( 'strval', $channels ),
				function ( $c ) {
					return 1 === preg_match( '/^[A-Za-z0-9._\-:@=*]{1,128}$/', $c );
				}
			)
		);
	}

	/**
	 * Issues a token for a user.
	 *
	 * @param int      $user_id  User id.
	 * @param int|null $now      Unix time.
	 * @param string[] $presence Presence channels granted on top of the user's own channels
	 *                           (already checked with Realtime_Events_Presence::can_join()).
	 * @return array{token:string,iat:int,exp:int,sub:string,channels:string[],base:string[],info:array}|null
	 *         Null without a token secret, for anonymous visitors, or without any channel.
	 */
	public static function issue( $user_id, $now = null, array $presence = array() ) {
		$secret  = Realtime_Events_Config::token_secret();
		$user_id = (int) $user_id;
		if ( '' === $secret || $user_id <= 0 ) {
			return null;
		}
		$base     = self::channels_for( $user_id );
		$channels = $base;
		foreach ( $presence as $channel ) {
			if ( Realtime_Events_Presence::is_presence_channel( $channel ) && ! in_array( $channel, $channels, true ) ) {
				$channels[] = $channel;
			}
		}
		if ( ! $channels ) {
			return null;
		}
		$now    = null === $now ? time() : (int) $now;
		$claims = array(
			'sub'      => (string) $user_id,
			'iat'      => $now,
			'exp'      => $now + Realtime_Events_Config::token_ttl(),
			'channels' => $channels,
		);
		$info = Realtime_Events_Presence::info_for( $user_id );
		if ( $info ) {
			$claims['info'] = (object) $info; // always a JSON object, as the hub requires
		}
		return array(
			'token'    => Realtime_Events_JWT::encode( $claims, $secret ),
			'iat'      => $claims['iat'],
			'exp'      => $claims['exp'],
			'sub'      => $claims['sub'],
			'channels' => $channels,
			'base'     => $base,
			'info'     => $info,
		);
	}

	/**
	 * Whether the token cookie of this request is valid for $user_id for at least half its
	 * lifetime more (then no new cookie is needed).
	 *
	 * @param int      $user_id User id.
	 * @param int|null $now     Unix time.
	 * @return bool
	 */
	public static function cookie_is_fresh( $user_id, $now = null ) {
		$now  = null === $now ? time() : (int) $now;
		$name = Realtime_Events_Config::token_cookie();
		if ( empty( $_COOKIE[ $name ] ) || empty( $_COOKIE[ Realtime_Events_Config::token_meta_cookie() ] ) ) {
			return false;
		}
		$claims = Realtime_Events_JWT::decode( sanitize_text_field( wp_unslash( $_COOKIE[ $name ] ) ), Realtime_Events_Config::token_secret(), $now );
		if ( is_wp_error( $claims ) || ! isset( $claims['sub'] ) || (string) (int) $user_id !== (string) $claims['sub'] ) {
			return false;
		}
		// The user's own channels come first; presence grants may follow them.
		$base = self::channels_for( $user_id );
		if ( ! isset( $claims['channels'] ) || ! is_array( $claims['channels'] ) || array_slice( $claims['channels'], 0, count( $base ) ) !== $base ) {
			return false;
		}
		// A changed display name or avatar needs a new token.
		$info = isset( $claims['info'] ) && is_array( $claims['info'] ) ? $claims['info'] : array();
		if ( wp_json_encode( $info ) !== wp_json_encode( Realtime_Events_Presence::info_for( $user_id ) ) ) {
			return false;
		}
		return (int) $claims['exp'] - $now > Realtime_Events_Config::token_ttl() / 2;
	}

	/**
	 * On page loads of logged-in users: set or renew the cookies when needed.
	 */
	public static function maybe_refresh_cookie() {
		if ( ! Realtime_Events_Config::has_private_channels() || ! is_user_logged_in() ) {
			return;
		}
		if ( headers_sent() || wp_doing_cron() || 'cli' === PHP_SAPI ) {
			return;
		}
		$user_id = get_current_user_id();
		if ( self::cookie_is_fresh( $user_id ) ) {
			return;
		}
		$issued = self::issue( $user_id, null, Realtime_Events_Presence::carried_grants( (string) $user_id ) );
		if ( $issued ) {
			self::set_cookies( $issued );
		}
	}

	/**
	 * At login (set_logged_in_cookie), before the user is current.
	 *
	 * @param string $logged_in_cookie Cookie value (unused).
	 * @param int    $expire           Cookie expiry (unused).
	 * @param int    $expiration       Session expiry (unused).
	 * @param int    $user_id          User id.
	 */
	public static function on_login( $logged_in_cookie, $expire, $expiration, $user_id ) {
		if ( ! Realtime_Events_Config::has_private_channels() || headers_sent() || 'cli' === PHP_SAPI ) {
			return;
		}
		$issued = self::issue( (int) $user_id );
		if ( $issued ) {
			self::set_cookies( $issued );
		}
	}

	/**
	 * Cookie attributes shared by both cookies.
	 *
	 * @param int  $expires  Unix time.
	 * @param bool $httponly HttpOnly.
	 * @return array
	 */
	private static function cookie_options( $expires, $httponly ) {
		/**
		 * Filters the SameSite attribute of the token cookies (Strict or Lax).
		 *
		 * @param string $samesite Default "Strict".
		 */
		$samesite = apply_filters( 'realtime_events_cookie_samesite', 'Strict' );
		return array(
			'expires'  => (int) $expires,
			'path'     => '/',
			'domain'   => defined( 'COOKIE_DOMAIN' ) && COOKIE_DOMAIN ? COOKIE_DOMAIN : '',
			'secure'   => is_ssl(),
			'httponly' => $httponly,
			'samesite' => in_array( $samesite, array( 'Strict', 'Lax' ), true ) ? $samesite : 'Strict',
		);
	}

	/**
	 * Sends the token cookie (HttpOnly) and, for users, its meta cookie (expiry and the
	 * user's own channels only: presence channels are joined by the page that shows them,
	 * not by every page). Anonymous visitors get no meta cookie: scripts take its presence
	 * as "logged in". This request's $_COOKIE sees the new values even when the headers
	 * are already sent.
	 *
	 * @param array $issued Result of issue() or Realtime_Events_Presence::issue_anonymous().
	 */
	public static function set_cookies( array $issued ) {
		$anonymous = ! empty( $issued['anonymous'] );
		$meta      = rawurlencode(
			(string) wp_json_encode(
				array(
					'iat'      => $issued['iat'],
					'exp'      => $issued['exp'],
					'channels' => isset( $issued['base'] ) ? $issued['base'] : $issued['channels'],
				),
				JSON_UNESCAPED_SLASHES
			)
		);
		if ( ! headers_sent() ) {
			setcookie( Realtime_Events_Config::token_cookie(), $issued['token'], self::cookie_options( $issued['exp'], true ) );
			if ( ! $anonymous ) {
				// The meta cookie outlives the token so that a page script still knows it
				// should refresh an expired token; logout removes it.
				setrawcookie( Realtime_Events_Config::token_meta_cookie(), $meta, self::cookie_options( time() + 14 * DAY_IN_SECONDS, false ) );
			}
		}
		$_COOKIE[ Realtime_Events_Config::token_cookie() ] = $issued['token'];
		if ( ! $anonymous ) {
			$_COOKIE[ Realtime_Events_Config::token_meta_cookie() ] = rawurldecode( $meta );
		}
	}

	/**
	 * Removes both cookies (logout).
	 */
	public static function clear_cookies() {
		if ( headers_sent() || 'cli' === PHP_SAPI ) {
			return;
		}
		$past = time() - YEAR_IN_SECONDS;
		setcookie( Realtime_Events_Config::token_cookie(), '', self::cookie_options( $past, true ) );
		setcookie( Realtime_Events_Config::token_meta_cookie(), '', self::cookie_options( $past, false ) );
		unset( $_COOKIE[ Realtime_Events_Config::token_cookie() ], $_COOKIE[ Realtime_Events_Config::token_meta_cookie() ] );
	}

	/**
	 * REST route for refreshing the cookie.
	 */
	public static function register_routes() {
		register_rest_route(
			self::REST_NAMESPACE,
			self::REST_ROUTE,
			array(
				'methods'             => WP_REST_Server::CREATABLE,
				'callback'            => array( __CLASS__, 'rest_token' ),
				// Cookie-authenticated REST requests only count as logged in with a valid
				// X-WP-Nonce (wp_rest), which is what protects this route from CSRF.
				'permission_callback' => array( __CLASS__, 'rest_permission' ),
			)
		);
	}

	/**
	 * Permission: a logged-in user.
	 *
	 * @return bool|WP_Error
	 */
	public static function rest_permission() {
		if ( ! is_user_logged_in() ) {
			return new WP_Error( 'rest_forbidden', __( 'You must be logged in to get a realtime token.', 'realtime-events' ), array( 'status' => rest_authorization_required_code() ) );
		}
		return true;
	}

	/**
	 * POST /realtime-events/v1/token: renews the cookies. The body holds no token.
	 *
	 * @return WP_REST_Response|WP_Error
	 */
	public static function rest_token() {
		if ( ! Realtime_Events_Config::has_private_channels() ) {
			return new WP_Error( 'realtime_events_no_token_secret', __( 'Private channels are not configured (REALTIME_EVENTS_TOKEN_SECRET).', 'realtime-events' ), array( 'status' => 404 ) );
		}
		$user_id = get_current_user_id();
		$issued  = self::issue( $user_id, null, Realtime_Events_Presence::carried_grants( (string) $user_id ) );
		if ( ! $issued ) {
			return new WP_Error( 'realtime_events_no_channels', __( 'No private channel is granted to this user.', 'realtime-events' ), array( 'status' => 403 ) );
		}
		self::set_cookies( $issued );
		$response = new WP_REST_Response(
			array(
				'expires'  => $issued['exp'],
				'channels' => $issued['channels'],
			)
		);
		$response->header( 'Cache-Control', 'no-store, private' );
		return $response;
	}
}
