<?php
/**
 * Front end: the [realtime_notifications] shortcode and the browser client.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * Prints the notification area and enqueues assets/realtime-events.js with its configuration.
 *
 * Everything printed is the same for every visitor (safe for full-page caches): the
 * logged-in user's private channel is added in the browser from the token meta cookie,
 * and the token itself only travels in an HttpOnly cookie.
 */
class Realtime_Events_Frontend {

	const HANDLE      = 'realtime-events';
	const AUTH_HANDLE = 'realtime-events-auth';
	const CONTAINER   = 'realtime-notification-area';

	/**
	 * Whether the area was printed on this page (its id must be unique).
	 *
	 * @var bool
	 */
	private static $printed = false;

	/**
	 * Hooks.
	 */
	public static function register() {
		add_shortcode( 'realtime_notifications', array( __CLASS__, 'shortcode' ) );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'register_scripts' ) );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'early_style' ), 20 );
	}

	/**
	 * Loads the stylesheet in <head> when the page's content has the shortcode (otherwise
	 * it is printed in the footer when the shortcode runs).
	 */
	public static function early_style() {
		$post = get_post();
		if ( is_singular() && $post && has_shortcode( $post->post_content, 'realtime_notifications' ) && apply_filters( 'realtime_events_enqueue_style', true ) ) {
			wp_enqueue_style( self::HANDLE );
		}
	}

	/**
	 * Registers (does not enqueue) the scripts.
	 */
	public static function register_scripts() {
		if ( wp_script_is( self::HANDLE, 'registered' ) ) {
			return;
		}
		wp_register_script(
			self::HANDLE,
			plugins_url( 'assets/realtime-events.js', REALTIME_EVENTS_FILE ),
			array(),
			REALTIME_EVENTS_VERSION,
			true
		);
		wp_register_style(
			self::HANDLE,
			plugins_url( 'assets/realtime-events.css', REALTIME_EVENTS_FILE ),
			array(),
			REALTIME_EVENTS_VERSION
		);
		wp_register_script(
			self::AUTH_HANDLE,
			plugins_url( 'assets/realtime-events-auth.js', REALTIME_EVENTS_FILE ),
			array( self::HANDLE ),
			REALTIME_EVENTS_VERSION,
			true
		);
	}

	/**
	 * Parses a comma-separated channel list, keeping valid names only.
	 *
	 * @param string $list e.g. "default,posts".
	 * @return string[]
	 */
	public static function parse_channels( $list ) {
		$out = array();
		foreach ( explode( ',', (string) $list ) as $channel ) {
			$channel = trim( $channel );
			if ( Realtime_Events_Outbox::valid_channel( $channel ) && ! in_array( $channel, $out, true ) ) {
				$out[] = $channel;
			}
		}
		return $out;
	}

	/**
	 * [realtime_notifications channels="default,posts" max_items="20" private="yes"]
	 *
	 * @param array|string $atts Attributes.
	 * @return string HTML.
	 */
	public static function shortcode( $atts ) {
		$atts = shortcode_atts(
			array(
				'channels'  => 'default,posts',
				'max_items' => 20,
				'private'   => 'yes',
			),
			$atts,
			'realtime_notifications'
		);
		if ( self::$printed ) {
			return ''; // One area per page: the client renders into one element id.
		}
		self::$printed = true;

		$config = array(
			'url'       => Realtime_Events_Config::ws_url(),
			'channels'  => self::parse_channels( $atts['channels'] ),
			'container' => '#' . self::CONTAINER,
			'maxItems'  => max( 1, min( 100, absint( $atts['max_items'] ) ) ),
		);
		/**
		 * Filters the client configuration (window.RealtimeEventsConfig). It is printed
		 * into the page: keep it free of secrets and of anything user-specific.
		 *
		 * @param array $config url, channels, container, maxItems.
		 * @param array $atts   Shortcode attributes.
		 */
		$config = apply_filters( 'realtime_events_client_config', $config, $atts );

		self::register_scripts();
		$json   = wp_json_encode( $config, JSON_HEX_TAG | JSON_HEX_AMP );
		$script = 'window.RealtimeEventsConfig = ' . $json . ';';

		$private = Realtime_Events_Config::has_private_channels() && ! in_array( strtolower( (string) $atts['private'] ), array( 'no', 'false', '0', 'off' ), true );
		if ( $private ) {
			// Adds the channels of the visitor's token (from the meta cookie, which holds
			// no secret) in the browser, so the HTML stays identical for everyone.
			$script .= '(function(c,n){try{var m=document.cookie.match(new RegExp("(?:^|; )"+n+"=([^;]*)"));if(!m)return;'
				. 'var d=JSON.parse(decodeURIComponent(m[1]));(d&&d.channels||[]).forEach(function(ch){'
				. 'if(typeof ch==="string"&&ch.indexOf("*")<0&&c.channels.indexOf(ch)<0)c.channels.push(ch);});}catch(e){}})'
				. '(window.RealtimeEventsConfig,' . wp_json_encode( Realtime_Events_Config::token_meta_cookie() ) . ');';
		}
		wp_add_inline_script( self::HANDLE, $script, 'before' );
		wp_enqueue_script( self::HANDLE );
		/** Filters whether the plugin's stylesheet for the notification area is loaded. */
		if ( apply_filters( 'realtime_events_enqueue_style', true ) ) {
			wp_enqueue_style( self::HANDLE );
		}

		if ( $private ) {
			$auth = array(
				'restUrl'    => esc_url_raw( rest_url( Realtime_Events_Auth::REST_NAMESPACE . Realtime_Events_Auth::REST_ROUTE ) ),
				'nonceUrl'   => esc_url_raw( admin_url( 'admin-ajax.php?action=rest-nonce' ) ),
				'metaCookie' => Realtime_Events_Config::token_meta_cookie(),
			);
			wp_add_inline_script( self::AUTH_HANDLE, 'window.RealtimeEventsAuthConfig = ' . wp_json_encode( $auth, JSON_HEX_TAG | JSON_HEX_AMP ) . ';', 'before' );
			wp_enqueue_script( self::AUTH_HANDLE );
		}

		return '<div id="' . esc_attr( self::CONTAINER ) . '" class="realtime-notification-area" aria-live="polite" aria-label="' . esc_attr__( 'Live notifications', 'realtime-events' ) . '" data-empty-text="' . esc_attr__( 'Live updates appear here.', 'realtime-events' ) . '"></div>';
	}
}
