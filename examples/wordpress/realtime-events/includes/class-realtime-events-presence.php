<?php
/**
 * Presence grants: who may join which presence channel, what the other members see of
 * a user, and the REST route that puts a presence channel into the visitor's token.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Presence channels (`presence-*`) are always private: the hub lets a connection join one
 * only when the token of its handshake grants it, and shows the token's `sub` (the member
 * id) and `info` (a JSON object of at most 1 KiB) to the other members.
 *
 * - Logged-in users: `sub` is the user id, `info` is {name, avatar} (filter
 *   realtime_events_presence_info). Their token keeps its private channels and gains each
 *   presence channel they ask for and may join.
 * - Anonymous visitors (filter realtime_events_presence_anonymous, default on): `sub` is a
 *   random id `anon-<32 hex>` kept in their token cookie, with no `info`, so they count but
 *   are never named. The token is minted by POST /realtime-events/v1/presence, which needs
 *   no nonce for them and is rate-limited per IP address.
 *
 * A token holds at most MAX_GRANTS presence channels (the most recent); every grant is
 * checked again whenever the token is renewed. The token only ever travels in the HttpOnly
 * cookie, and the HTML of the pages stays the same for every visitor.
 */
class Realtime_Events_Presence {

	const REST_ROUTE = '/presence';

	/** Prefix of anonymous member ids (WordPress user ids are digits, so none collides). */
	const ANONYMOUS_PREFIX = 'anon-';

	/** Presence channels one token grants at most (the most recently asked for). */
	const MAX_GRANTS = 10;

	/** The hub refuses a token whose `info` is larger than this, once encoded. */
	const MAX_INFO_BYTES = 1024;

	/** Characters of a display name kept in `info`. */
	const MAX_NAME_CHARS = 64;

	/** Default rate limit of anonymous grants: this many per IP address... */
	const RATE_LIMIT = 60;

	/** ... per this many seconds. */
	const RATE_WINDOW = 300;

	/**
	 * Hooks.
	 */
	public static function register() {
		add_action( 'rest_api_init', array( __CLASS__, 'register_routes' ) );
	}

	/**
	 * Whether a channel is a presence channel: `presence-*`, and whatever a site adds for the
	 * hub's own `presence` patterns.
	 *
	 * @param mixed $channel Channel name.
	 * @return bool
	 */
	public static function is_presence_channel( $channel ) {
		if ( ! Realtime_Events_Outbox::valid_channel( $channel ) || false !== strpos( $channel, '*' ) ) {
			return false;
		}
		/**
		 * Filters whether a channel is a presence channel the plugin may grant. `presence-*`
		 * always is; return true for channels that match the hub's `presence` patterns.
		 *
		 * @param bool   $is      Default: whether it starts with "presence-".
		 * @param string $channel Channel name.
		 */
		return (bool) apply_filters( 'realtime_events_is_presence_channel', 0 === strpos( $channel, 'presence-' ), $channel );
	}

	/**
	 * The post of a `presence-post.<ID>` channel.
	 *
	 * @param string $channel Channel name.
	 * @return int Post id, 0 for other channels.
	 */
	public static function post_id_of( $channel ) {
		return is_string( $channel ) && preg_match( '/^presence-post\.([1-9][0-9]{0,19})$/', $channel, $m ) ? (int) $m[1] : 0;
	}

	/**
	 * The presence channel of a post.
	 *
	 * @param int $post_id Post id.
	 * @return string
	 */
	public static function channel_of_post( $post_id ) {
		return 'presence-post.' . (int) $post_id;
	}

	/**
	 * Whether a user (0: an anonymous visitor) may join a presence channel.
	 * Default: `presence-post.<ID>` of a post the user may read (anonymous visitors: a
	 * published, publicly viewable post), never while its password is required.
	 *
	 * @param string $channel Channel name.
	 * @param int    $user_id User id, 0 for anonymous.
	 * @return bool
	 */
	public static function can_join( $channel, $user_id ) {
		if ( ! self::is_presence_channel( $channel ) ) {
			return false;
		}
		$user_id = (int) $user_id;
		$allowed = false;
		$post_id = self::post_id_of( $channel );
		$post    = $post_id ? get_post( $post_id ) : null;
		if ( $post && 'trash' !== $post->post_status && ! post_password_required( $post ) ) {
			$allowed = $user_id > 0 ? user_can( $user_id, 'read_post', $post->ID ) : is_post_publicly_viewable( $post );
		}
		/**
		 * Filters whether a user may join a presence channel (and so appear in it and see
		 * its members). Called again whenever the user's token is renewed.
		 *
		 * @param bool   $allowed Default: see Realtime_Events_Presence::can_join().
		 * @param string $channel Channel name.
		 * @param int    $user_id User id, 0 for an anonymous visitor.
		 */
		return (bool) apply_filters( 'realtime_events_presence_can_join', $allowed, $channel, $user_id );
	}

	/**
	 * Whether anonymous visitors may join presence channels (and so be counted).
	 *
	 * @return bool
	 */
	public static function anonymous_allowed() {
		/**
		 * Filters whether anonymous visitors get presence tokens (they are counted, never named).
		 *
		 * @param bool $allowed Default true.
		 */
		return (bool) apply_filters( 'realtime_events_presence_anonymous', true );
	}

	/**
	 * What the other members of a presence channel see of a user: the token's `info`.
	 * Default {name: display name, avatar: avatar URL (when the site shows avatars)}.
	 *
	 * @param int $user_id User id.
	 * @return array Empty for no info. Never more than MAX_INFO_BYTES once encoded.
	 */
	public static function info_for( $user_id ) {
		$user = $user_id > 0 ? get_userdata( (int) $user_id ) : false;
		if ( ! $user ) {
			return array();
		}
		$name = self::truncate( (string) $user->display_name, self::MAX_NAME_CHARS );
		$info = array( 'name' => $name );
		if ( get_option( 'show_avatars' ) ) {
			$avatar = get_avatar_url( $user->ID, array( 'size' => 48 ) );
			if ( is_string( $avatar ) && '' !== $avatar ) {
				$info['avatar'] = $avatar;
			}
		}
		/**
		 * Filters what other members of presence channels see of a user (the token's
		 * `info`). Every subscriber of the channel receives it, anonymous ones included.
		 * Return an empty array to send none. Kept under 1 KiB: a larger value falls back
		 * to the name alone.
		 *
		 * @param array   $info {name, avatar}.
		 * @param WP_User $user The user.
		 */
		$info = apply_filters( 'realtime_events_presence_info', $info, $user );
		if ( ! is_array( $info ) || ! $info ) {
			return array();
		}
		if ( self::info_size( $info ) > self::MAX_INFO_BYTES ) {
			$info = array( 'name' => $name );
		}
		return $info;
	}

	/**
	 * Bytes of an info object as the token encodes it.
	 *
	 * @param array $info Info.
	 * @return int PHP_INT_MAX when it cannot be encoded.
	 */
	public static function info_size( array $info ) {
		$json = wp_json_encode( (object) $info, JSON_UNESCAPED_SLASHES );
		return false === $json ? PHP_INT_MAX : strlen( $json );
	}

	/**
	 * First $chars characters of a UTF-8 string.
	 *
	 * @param string $text  Text.
	 * @param int    $chars Characters.
	 * @return string
	 */
	private static function truncate( $text, $chars ) {
		if ( function_exists( 'mb_substr' ) ) {
			return mb_substr( $text, 0, $chars, 'UTF-8' );
		}
		return substr( $text, 0, $chars );
	}

	/**
	 * Whether a member id is an anonymous visitor's.
	 *
	 * @param mixed $id Member id (a token's sub).
	 * @return bool
	 */
	public static function is_anonymous_id( $id ) {
		return is_string( $id ) && 1 === preg_match( '/^anon-[0-9a-f]{32}$/', $id );
	}

	/**
	 * A new random anonymous member id.
	 *
	 * @return string
	 */
	public static function new_anonymous_id() {
		return self::ANONYMOUS_PREFIX . bin2hex( random_bytes( 16 ) );
	}

	/**
	 * Claims of this request's token cookie, when it is valid.
	 *
	 * @param int|null $now Unix time.
	 * @return array|null
	 */
	public static function current_claims( $now = null ) {
		$name   = Realtime_Events_Config::token_cookie();
		$secret = Realtime_Events_Config::token_secret();
		if ( '' === $secret || empty( $_COOKIE[ $name ] ) || ! is_string( $_COOKIE[ $name ] ) ) {
			return null;
		}
		$claims = Realtime_Events_JWT::decode( sanitize_text_field( wp_unslash( $_COOKIE[ $name ] ) ), $secret, $now );
		return is_array( $claims ) && isset( $claims['sub'] ) && is_string( $claims['sub'] ) ? $claims : null;
	}

	/**
	 * The presence channels that this request's token grants to $sub and that $sub may still
	 * join: what a renewed token keeps.
	 *
	 * @param string   $sub Member id: a user id ("42") or an anonymous id.
	 * @param int|null $now Unix time.
	 * @return string[]
	 */
	public static function carried_grants( $sub, $now = null ) {
		$claims = self::current_claims( $now );
		if ( ! $claims || (string) $sub !== $claims['sub'] || ! isset( $claims['channels'] ) || ! is_array( $claims['channels'] ) ) {
			return array();
		}
		$user_id = self::is_anonymous_id( $claims['sub'] ) ? 0 : (int) $claims['sub'];
		$out     = array();
		foreach ( $claims['channels'] as $channel ) {
			if ( is_string( $channel ) && ! in_array( $channel, $out, true ) && self::can_join( $channel, $user_id ) ) {
				$out[] = $channel;
			}
		}
		return array_slice( $out, -self::MAX_GRANTS );
	}

	/**
	 * Adds a channel as the most recent grant, keeping at most MAX_GRANTS.
	 *
	 * @param string[] $grants  Grants, oldest first.
	 * @param string   $channel Channel.
	 * @return string[]
	 */
	public static function add_grant( array $grants, $channel ) {
		$grants   = array_values( array_diff( $grants, array( $channel ) ) );
		$grants[] = $channel;
		return array_slice( $grants, -self::MAX_GRANTS );
	}

	/**
	 * A token for an anonymous visitor: its id and presence channels, no info.
	 *
	 * @param string   $sub      Anonymous id.
	 * @param string[] $channels Presence channels.
	 * @param int|null $now      Unix time.
	 * @return array|null The shape of Realtime_Events_Auth::issue(), plus anonymous=true.
	 */
	public static function issue_anonymous( $sub, array $channels, $now = null ) {
		$secret = Realtime_Events_Config::token_secret();
		if ( '' === $secret || ! self::is_anonymous_id( $sub ) || ! $channels ) {
			return null;
		}
		$now    = null === $now ? time() : (int) $now;
		$claims = array(
			'sub'      => $sub,
			'iat'      => $now,
			'exp'      => $now + Realtime_Events_Config::token_ttl(),
			'channels' => array_values( $channels ),
		);
		return array(
			'token'     => Realtime_Events_JWT::encode( $claims, $secret ),
			'iat'       => $claims['iat'],
			'exp'       => $claims['exp'],
			'sub'       => $sub,
			'channels'  => $claims['channels'],
			'base'      => array(),
			'anonymous' => true,
		);
	}

	/**
	 * The visitor's IP address, for the rate limit.
	 *
	 * @return string
	 */
	public static function client_ip() {
		$ip = isset( $_SERVER['REMOTE_ADDR'] ) ? sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) ) : '';
		/**
		 * Filters the address anonymous presence grants are counted by (behind a proxy
		 * that WordPress does not know about, REMOTE_ADDR is the proxy's).
		 *
		 * @param string $ip REMOTE_ADDR.
		 */
		return (string) apply_filters( 'realtime_events_presence_client_ip', $ip );
	}

	/**
	 * Counts one anonymous grant for an address.
	 *
	 * @param string   $ip  Address.
	 * @param int|null $now Unix time.
	 * @return int 0 when allowed, else the seconds until the next one is.
	 */
	public static function rate_limit( $ip, $now = null ) {
		/**
		 * Filters the rate limit of anonymous presence grants per IP address.
		 *
		 * @param array $limit [requests, seconds]; requests 0 turns the limit off.
		 */
		$limit  = apply_filters( 'realtime_events_presence_rate_limit', array( self::RATE_LIMIT, self::RATE_WINDOW ) );
		$max    = is_array( $limit ) && isset( $limit[0] ) ? (int) $limit[0] : self::RATE_LIMIT;
		$window = is_array( $limit ) && isset( $limit[1] ) ? max( 1, (int) $limit[1] ) : self::RATE_WINDOW;
		if ( $max <= 0 ) {
			return 0;
		}
		$now   = null === $now ? time() : (int) $now;
		$key   = 'realtime_events_rl_' . md5( $ip );
		$state = get_transient( $key );
		if ( ! is_array( $state ) || ! isset( $state['start'], $state['count'] ) || $now >= (int) $state['start'] + $window ) {
			$state = array(
				'start' => $now,
				'count' => 0,
			);
		}
		$left = (int) $state['start'] + $window - $now;
		if ( (int) $state['count'] >= $max ) {
			return max( 1, $left );
		}
		++$state['count'];
		set_transient( $key, $state, max( 1, $left ) );
		return 0;
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
				'callback'            => array( __CLASS__, 'rest_grant' ),
				// Public on purpose: anonymous visitors are counted. Logged-in users are
				// only recognised with the REST nonce (X-WP-Nonce), which protects them
				// from cross-site requests; rest_grant() refuses to hand an anonymous
				// token to a browser that holds a login cookie but sent no nonce.
				'permission_callback' => '__return_true',
				'args'                => array(
					'channel' => array(
						'type'     => 'string',
						'required' => true,
					),
				),
			)
		);
	}

	/**
	 * POST /realtime-events/v1/presence {channel}: adds the channel to the visitor's token
	 * cookie. The body never holds the token.
	 *
	 * @param WP_REST_Request $request Request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function rest_grant( $request ) {
		if ( ! Realtime_Events_Config::has_private_channels() ) {
			return new WP_Error( 'realtime_events_no_token_secret', __( 'Presence needs REALTIME_EVENTS_TOKEN_SECRET.', 'realtime-events' ), array( 'status' => 404 ) );
		}
		$channel = (string) $request->get_param( 'channel' );
		if ( ! self::is_presence_channel( $channel ) ) {
			return new WP_Error( 'realtime_events_bad_channel', __( 'Not a presence channel.', 'realtime-events' ), array( 'status' => 400 ) );
		}
		$user_id = get_current_user_id();
		if ( $user_id <= 0 ) {
			if ( wp_validate_auth_cookie( '', 'logged_in' ) ) {
				// Logged in, but without the nonce WordPress treats the request as anonymous:
				// an anonymous token would replace the user's own.
				return new WP_Error( 'realtime_events_nonce_required', __( 'Send the REST nonce (X-WP-Nonce).', 'realtime-events' ), array( 'status' => 401 ) );
			}
			if ( ! self::anonymous_allowed() ) {
				return new WP_Error( 'realtime_events_login_required', __( 'Log in to join this channel.', 'realtime-events' ), array( 'status' => 401 ) );
			}
			$wait = self::rate_limit( self::client_ip() );
			if ( $wait > 0 ) {
				$response = new WP_REST_Response(
					array(
						'code'    => 'realtime_events_rate_limited',
						'message' => __( 'Too many requests; try again later.', 'realtime-events' ),
						'data'    => array( 'status' => 429 ),
					),
					429
				);
				$response->header( 'Retry-After', (string) $wait );
				return $response;
			}
		}
		if ( ! self::can_join( $channel, $user_id ) ) {
			return new WP_Error( 'realtime_events_forbidden', __( 'You may not join this channel.', 'realtime-events' ), array( 'status' => 403 ) );
		}

		if ( $user_id > 0 ) {
			$grants = self::add_grant( self::carried_grants( (string) $user_id ), $channel );
			$issued = Realtime_Events_Auth::issue( $user_id, null, $grants );
		} else {
			$claims = self::current_claims();
			$sub    = $claims && self::is_anonymous_id( $claims['sub'] ) ? $claims['sub'] : self::new_anonymous_id();
			$issued = self::issue_anonymous( $sub, self::add_grant( self::carried_grants( $sub ), $channel ) );
		}
		if ( ! $issued ) {
			return new WP_Error( 'realtime_events_no_token', __( 'No token could be issued.', 'realtime-events' ), array( 'status' => 500 ) );
		}
		Realtime_Events_Auth::set_cookies( $issued );
		$response = new WP_REST_Response(
			array(
				'channel'   => $channel,
				'member'    => $issued['sub'],
				'anonymous' => $user_id <= 0,
				'expires'   => $issued['exp'],
			)
		);
		$response->header( 'Cache-Control', 'no-store, private' );
		return $response;
	}
}
