<?php
/**
 * Front end of presence: the [realtime_presence] shortcode and assets/realtime-presence.js.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * [realtime_presence] prints an empty placeholder for a presence channel (by default the
 * current post's `presence-post.<ID>`, on the post's own page only); assets/realtime-presence.js fills it with the number
 * of readers and, for logged-in viewers, the names and avatars of the logged-in readers.
 *
 * The HTML and the inline configuration are the same for every visitor, so pages stay
 * cacheable: the script asks POST /realtime-events/v1/presence for a grant (a token cookie)
 * only when the hub refuses the channel, and shows nothing at all when the browser client
 * has no presence support or the visitor may not join.
 */
class Realtime_Events_Presence_Frontend {

	const HANDLE = 'realtime-events-presence';

	/**
	 * Whether the configuration was printed on this page.
	 *
	 * @var bool
	 */
	private static $configured = false;

	/**
	 * Hooks.
	 */
	public static function register() {
		add_shortcode( 'realtime_presence', array( __CLASS__, 'shortcode' ) );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'register_assets' ), 11 );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'early_style' ), 20 );
	}

	/**
	 * Registers (does not enqueue) the presence script and style.
	 */
	public static function register_assets() {
		if ( wp_script_is( self::HANDLE, 'registered' ) ) {
			return;
		}
		Realtime_Events_Frontend::register_scripts();
		wp_register_script(
			self::HANDLE,
			plugins_url( 'assets/realtime-presence.js', REALTIME_EVENTS_FILE ),
			array( Realtime_Events_Frontend::HANDLE ),
			REALTIME_EVENTS_VERSION,
			true
		);
		wp_register_style(
			self::HANDLE,
			plugins_url( 'assets/realtime-presence.css', REALTIME_EVENTS_FILE ),
			array(),
			REALTIME_EVENTS_VERSION
		);
	}

	/**
	 * Loads the stylesheet in <head> when the page's content has the shortcode.
	 */
	public static function early_style() {
		$post = get_post();
		if ( is_singular() && $post && has_shortcode( $post->post_content, 'realtime_presence' ) && apply_filters( 'realtime_events_enqueue_style', true ) ) {
			self::register_assets();
			wp_enqueue_style( self::HANDLE );
		}
	}

	/**
	 * The channel a shortcode shows.
	 *
	 * Without an attribute: the current post's, and only on that post's own page. On a blog
	 * index or an archive that prints whole posts, a visitor would otherwise join (and be
	 * counted as reading) every post on the page.
	 *
	 * @param string $attribute The channel attribute ('' for the current post's).
	 * @return string '' when there is none.
	 */
	public static function channel_for( $attribute ) {
		$attribute = trim( (string) $attribute );
		if ( '' === $attribute ) {
			$post_id = (int) get_the_ID();
			if ( ! $post_id || ! is_singular() || get_queried_object_id() !== $post_id ) {
				return '';
			}
			return Realtime_Events_Presence::channel_of_post( $post_id );
		}
		return Realtime_Events_Presence::is_presence_channel( $attribute ) ? $attribute : '';
	}

	/**
	 * [realtime_presence channel="presence-post.7" members="yes"]
	 *
	 * @param array|string $atts Attributes.
	 * @return string HTML (empty without a presence channel or without REALTIME_EVENTS_TOKEN_SECRET).
	 */
	public static function shortcode( $atts ) {
		$atts    = shortcode_atts(
			array(
				'channel' => '',
				'members' => 'yes',
			),
			$atts,
			'realtime_presence'
		);
		$channel = self::channel_for( $atts['channel'] );
		if ( '' === $channel || ! Realtime_Events_Config::has_private_channels() ) {
			return '';
		}
		self::register_assets();
		if ( ! self::$configured ) {
			self::$configured = true;
			$config           = array(
				'url'        => Realtime_Events_Config::ws_url(),
				'restUrl'    => esc_url_raw( rest_url( Realtime_Events_Auth::REST_NAMESPACE . Realtime_Events_Presence::REST_ROUTE ) ),
				'nonceUrl'   => esc_url_raw( admin_url( 'admin-ajax.php?action=rest-nonce' ) ),
				'metaCookie' => Realtime_Events_Config::token_meta_cookie(),
				'maxShown'   => 24,
				'text'       => array(
					/* translators: %s: number of people on the page (the count is for one person). */
					'one'   => _n( '%s reading now', '%s reading now', 1, 'realtime-events' ),
					/* translators: %s: number of people on the page (the count is for several people). */
					'other' => _n( '%s reading now', '%s reading now', 2, 'realtime-events' ),
					/* translators: %s: number of readers not listed. */
					'more'  => __( 'and %s more', 'realtime-events' ),
					'list'  => __( 'Logged-in readers', 'realtime-events' ),
				),
			);
			/**
			 * Filters the presence script's configuration (window.RealtimePresenceConfig). It
			 * is printed into the page: keep it free of secrets and of anything user-specific.
			 *
			 * @param array $config url, restUrl, nonceUrl, metaCookie, maxShown, text.
			 */
			$config = apply_filters( 'realtime_events_presence_config', $config );
			wp_add_inline_script( self::HANDLE, 'window.RealtimePresenceConfig = ' . wp_json_encode( $config, JSON_HEX_TAG | JSON_HEX_AMP ) . ';', 'before' );
		}
		wp_enqueue_script( self::HANDLE );
		if ( apply_filters( 'realtime_events_enqueue_style', true ) ) {
			wp_enqueue_style( self::HANDLE );
		}
		$members = in_array( strtolower( (string) $atts['members'] ), array( 'no', 'false', '0', 'off' ), true ) ? 'no' : 'yes';
		return '<div class="realtime-presence" data-channel="' . esc_attr( $channel ) . '" data-members="' . esc_attr( $members ) . '" aria-live="polite" hidden></div>';
	}
}
