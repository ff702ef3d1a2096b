<?php
/**
 * Presence: what tokens carry (info, presence grants), who may join, the grant REST route
 * for users and anonymous visitors, and the [realtime_presence] shortcode.
 *
 * @package RealtimeEventsTest
 */

/**
 * Realtime_Events_Presence, Realtime_Events_Auth (presence parts), Realtime_Events_Presence_Frontend.
 */
class PresenceTest extends RealtimeTestCase {

	/**
	 * Posts created by a test, deleted in tearDown().
	 *
	 * @var int[]
	 */
	private $posts = array();

	protected function setUp(): void {
		parent::setUp();
		unset( $_COOKIE['realtime_token'], $_COOKIE['realtime_token_meta'], $_COOKIE[ LOGGED_IN_COOKIE ] );
		$_SERVER['REMOTE_ADDR'] = '192.0.2.1';
		foreach ( array( '192.0.2.1', '192.0.2.255', '198.51.100.7', '203.0.113.9' ) as $ip ) {
			delete_transient( 'realtime_events_rl_' . md5( $ip ) ); // fresh rate-limit budgets
		}
	}

	protected function tearDown(): void {
		foreach ( $this->posts as $id ) {
			wp_delete_post( $id, true );
		}
		$this->posts = array();
		unset( $_COOKIE['realtime_token'], $_COOKIE['realtime_token_meta'], $_COOKIE[ LOGGED_IN_COOKIE ], $_SERVER['REMOTE_ADDR'] );
		parent::tearDown();
	}

	/**
	 * A post of the given status, by the administrator.
	 */
	private function post( $status = 'publish', $extra = array() ) {
		$id            = wp_insert_post(
			array_merge(
				array(
					'post_type'    => 'page', // pages publish no realtime event of their own
					'post_status'  => $status,
					'post_title'   => 'Presence test ' . $status,
					'post_author'  => get_user_by( 'login', 'admin' )->ID,
					'post_content' => 'x',
				),
				$extra
			),
			true
		);
		$this->assertIsInt( $id );
		$this->posts[] = $id;
		return $id;
	}

	private function reader() {
		return get_user_by( 'login', 'reader' );
	}

	private function claims_of_cookie() {
		$this->assertArrayHasKey( 'realtime_token', $_COOKIE, 'a token cookie was set' );
		$claims = Realtime_Events_JWT::decode( $_COOKIE['realtime_token'], REALTIME_EVENTS_TOKEN_SECRET );
		$this->assertIsArray( $claims );
		return $claims;
	}

	private function grant( $channel ) {
		$request = new WP_REST_Request( 'POST', '/realtime-events/v1/presence' );
		$request->set_param( 'channel', $channel );
		return rest_do_request( $request );
	}

	public function test_user_token_carries_info() {
		$reader = $this->reader();
		$issued = Realtime_Events_Auth::issue( $reader->ID, time() );
		$claims = Realtime_Events_JWT::decode( $issued['token'], REALTIME_EVENTS_TOKEN_SECRET );
		$this->assertSame( $reader->display_name, $claims['info']['name'] );
		$this->assertSame( get_avatar_url( $reader->ID, array( 'size' => 48 ) ), $claims['info']['avatar'] );
		$this->assertMatchesRegularExpression( '#^https?://#', $claims['info']['avatar'] );
		list( , $payload ) = explode( '.', $issued['token'] );
		$this->assertStringContainsString( '"info":{"name":', Realtime_Events_JWT::b64url_decode( $payload ), 'info is a JSON object' );
		$this->assertSame( array( 'private-user.' . $reader->ID ), $claims['channels'], 'no presence channel unless asked for' );
	}

	public function test_info_is_filterable_and_stays_under_1_kib() {
		$reader = $this->reader();
		$this->hook(
			'realtime_events_presence_info',
			function ( $info ) {
				$info['bio'] = str_repeat( 'é', 2000 );
				return $info;
			}
		);
		$info = Realtime_Events_Presence::info_for( $reader->ID );
		$this->assertSame( array( 'name' => $reader->display_name ), $info, 'too large: the name alone' );

		remove_all_filters( 'realtime_events_presence_info' );
		$this->hook( 'realtime_events_presence_info', '__return_empty_array' );
		$claims = Realtime_Events_JWT::decode( Realtime_Events_Auth::issue( $reader->ID )['token'], REALTIME_EVENTS_TOKEN_SECRET );
		$this->assertArrayNotHasKey( 'info', $claims, 'an empty info is left out (the hub wants an object or nothing)' );

		$this->assertSame( array(), Realtime_Events_Presence::info_for( 0 ) );
		$this->assertSame( array(), Realtime_Events_Presence::info_for( 999999 ) );
	}

	public function test_long_names_fit_the_hub_limit() {
		global $wpdb;
		$reader = $this->reader();
		// 4-byte characters: 12 bytes each once JSON-escaped. WordPress would not save such
		// a name itself (250 characters at most); an import might.
		$wpdb->update( $wpdb->users, array( 'display_name' => str_repeat( "\u{1F600}", 200 ) ), array( 'ID' => $reader->ID ) );
		clean_user_cache( $reader->ID );
		try {
			$info = Realtime_Events_Presence::info_for( $reader->ID );
			$this->assertSame( 64, mb_strlen( $info['name'] ), 'names are cut at 64 characters' );
			$this->assertLessThanOrEqual( Realtime_Events_Presence::MAX_INFO_BYTES, Realtime_Events_Presence::info_size( $info ) );
			$this->assertGreaterThan( 64 * 12, Realtime_Events_Presence::info_size( $info ) );
		} finally {
			$wpdb->update( $wpdb->users, array( 'display_name' => $reader->display_name ), array( 'ID' => $reader->ID ) );
			clean_user_cache( $reader->ID );
		}
	}

	public function test_who_may_join() {
		$reader  = $this->reader()->ID;
		$admin   = get_user_by( 'login', 'admin' )->ID;
		$public  = Realtime_Events_Presence::channel_of_post( $this->post( 'publish' ) );
		$draft   = Realtime_Events_Presence::channel_of_post( $this->post( 'draft' ) );
		$private = Realtime_Events_Presence::channel_of_post( $this->post( 'private' ) );
		$secret  = Realtime_Events_Presence::channel_of_post( $this->post( 'publish', array( 'post_password' => 'pw' ) ) );

		$this->assertTrue( Realtime_Events_Presence::can_join( $public, 0 ), 'anonymous visitors: a public post' );
		$this->assertTrue( Realtime_Events_Presence::can_join( $public, $reader ) );
		$this->assertFalse( Realtime_Events_Presence::can_join( $draft, 0 ) );
		$this->assertFalse( Realtime_Events_Presence::can_join( $draft, $reader ) );
		$this->assertTrue( Realtime_Events_Presence::can_join( $draft, $admin ), 'those who may read a draft' );
		$this->assertFalse( Realtime_Events_Presence::can_join( $private, 0 ) );
		$this->assertFalse( Realtime_Events_Presence::can_join( $private, $reader ) );
		$this->assertTrue( Realtime_Events_Presence::can_join( $private, $admin ) );
		$this->assertFalse( Realtime_Events_Presence::can_join( $secret, 0 ), 'not while the password is required' );
		$this->assertFalse( Realtime_Events_Presence::can_join( 'presence-post.999999999', $admin ), 'no such post' );
		$this->assertFalse( Realtime_Events_Presence::can_join( 'presence-room.1', $admin ), 'other presence channels only through the filter' );
		$this->assertFalse( Realtime_Events_Presence::can_join( 'post.1', $admin ), 'not a presence channel' );
		$this->assertFalse( Realtime_Events_Presence::can_join( 'presence-post.*', $admin ), 'never a glob' );

		$this->hook(
			'realtime_events_presence_can_join',
			function ( $allowed, $channel, $user_id ) {
				return $allowed || ( 'presence-room.1' === $channel && $user_id > 0 );
			},
			10,
			3
		);
		$this->assertTrue( Realtime_Events_Presence::can_join( 'presence-room.1', $reader ) );
		$this->assertFalse( Realtime_Events_Presence::can_join( 'presence-room.1', 0 ) );
	}

	public function test_anonymous_grant() {
		$one = Realtime_Events_Presence::channel_of_post( $this->post() );
		$two = Realtime_Events_Presence::channel_of_post( $this->post() );

		$response = $this->grant( $one );
		$this->assertSame( 200, $response->get_status() );
		$data = $response->get_data();
		$this->assertTrue( $data['anonymous'] );
		$this->assertSame( $one, $data['channel'] );
		$this->assertTrue( Realtime_Events_Presence::is_anonymous_id( $data['member'] ), $data['member'] );
		$this->assertArrayNotHasKey( 'token', $data, 'the token only travels in the HttpOnly cookie' );
		$this->assertStringContainsString( 'no-store', $response->get_headers()['Cache-Control'] );
		$claims = $this->claims_of_cookie();
		$this->assertSame( $data['member'], $claims['sub'] );
		$this->assertSame( array( $one ), $claims['channels'] );
		$this->assertArrayNotHasKey( 'info', $claims, 'anonymous visitors are counted, never named' );
		$this->assertArrayNotHasKey( 'realtime_token_meta', $_COOKIE, 'no meta cookie: scripts take it for "logged in"' );

		// A second channel: the same visitor (one member in both), both granted.
		$again = $this->grant( $two )->get_data();
		$this->assertSame( $data['member'], $again['member'] );
		$this->assertSame( array( $one, $two ), $this->claims_of_cookie()['channels'] );

		// The most recent MAX_GRANTS only.
		for ( $i = 0; $i < Realtime_Events_Presence::MAX_GRANTS; $i++ ) {
			$this->assertSame( 200, $this->grant( Realtime_Events_Presence::channel_of_post( $this->post() ) )->get_status() );
		}
		$channels = $this->claims_of_cookie()['channels'];
		$this->assertCount( Realtime_Events_Presence::MAX_GRANTS, $channels );
		$this->assertNotContains( $one, $channels );
		$this->assertSame( $data['member'], $this->claims_of_cookie()['sub'] );
	}

	public function test_anonymous_refusals() {
		$this->assertSame( 400, $this->grant( 'post.1' )->get_status(), 'not a presence channel' );
		$this->assertSame( 400, $this->grant( 'presence-post.*' )->get_status() );
		$this->assertSame( 403, $this->grant( Realtime_Events_Presence::channel_of_post( $this->post( 'private' ) ) )->get_status() );
		$this->assertSame( 403, $this->grant( Realtime_Events_Presence::channel_of_post( $this->post( 'draft' ) ) )->get_status() );
		$this->assertArrayNotHasKey( 'realtime_token', $_COOKIE, 'no token for a refusal' );

		$this->hook( 'realtime_events_presence_anonymous', '__return_false' );
		$response = $this->grant( Realtime_Events_Presence::channel_of_post( $this->post() ) );
		$this->assertSame( 401, $response->get_status() );
		$this->assertSame( 'realtime_events_login_required', $response->get_data()['code'] );
	}

	public function test_a_login_cookie_without_nonce_gets_no_anonymous_token() {
		$reader                       = $this->reader();
		$_COOKIE[ LOGGED_IN_COOKIE ] = wp_generate_auth_cookie( $reader->ID, time() + HOUR_IN_SECONDS, 'logged_in' );
		$response                     = $this->grant( Realtime_Events_Presence::channel_of_post( $this->post() ) );
		$this->assertSame( 401, $response->get_status() );
		$this->assertSame( 'realtime_events_nonce_required', $response->get_data()['code'] );
		$this->assertArrayNotHasKey( 'realtime_token', $_COOKIE );
	}

	public function test_anonymous_grants_are_rate_limited_per_address() {
		$this->hook(
			'realtime_events_presence_rate_limit',
			function () {
				return array( 3, 60 );
			}
		);
		$channel = Realtime_Events_Presence::channel_of_post( $this->post() );
		for ( $i = 0; $i < 3; $i++ ) {
			$this->assertSame( 200, $this->grant( $channel )->get_status(), "request $i" );
		}
		$limited = $this->grant( $channel );
		$this->assertSame( 429, $limited->get_status() );
		$this->assertGreaterThan( 0, (int) $limited->get_headers()['Retry-After'] );
		$this->assertLessThanOrEqual( 60, (int) $limited->get_headers()['Retry-After'] );

		$_SERVER['REMOTE_ADDR'] = '198.51.100.7';
		$this->assertSame( 200, $this->grant( $channel )->get_status(), 'another address has its own budget' );

		wp_set_current_user( $this->reader()->ID );
		$_SERVER['REMOTE_ADDR'] = '192.0.2.255';
		for ( $i = 0; $i < 5; $i++ ) {
			$this->assertSame( 200, $this->grant( $channel )->get_status(), 'logged-in users are not limited' );
		}

		$now = time();
		$this->assertSame( 0, Realtime_Events_Presence::rate_limit( '203.0.113.9', $now ) );
		$this->assertSame( 0, Realtime_Events_Presence::rate_limit( '203.0.113.9', $now ) );
		$this->assertSame( 0, Realtime_Events_Presence::rate_limit( '203.0.113.9', $now ) );
		$this->assertSame( 60, Realtime_Events_Presence::rate_limit( '203.0.113.9', $now ) );
		$this->assertSame( 0, Realtime_Events_Presence::rate_limit( '203.0.113.9', $now + 60 ), 'a new window' );
	}

	public function test_user_grant_keeps_the_users_channels_and_info() {
		$reader = $this->reader();
		wp_set_current_user( $reader->ID );
		$one = Realtime_Events_Presence::channel_of_post( $this->post() );
		$two = Realtime_Events_Presence::channel_of_post( $this->post() );

		$response = $this->grant( $one );
		$this->assertSame( 200, $response->get_status() );
		$this->assertFalse( $response->get_data()['anonymous'] );
		$this->assertSame( (string) $reader->ID, $response->get_data()['member'] );
		$this->grant( $two );
		$claims = $this->claims_of_cookie();
		$this->assertSame( (string) $reader->ID, $claims['sub'] );
		$this->assertSame( array( 'private-user.' . $reader->ID, $one, $two ), $claims['channels'] );
		$this->assertSame( $reader->display_name, $claims['info']['name'] );
		$meta = json_decode( $_COOKIE['realtime_token_meta'], true );
		$this->assertSame( array( 'private-user.' . $reader->ID ), $meta['channels'], 'the meta cookie lists the user\'s own channels: pages do not join presence channels by themselves' );

		// The token refresh (POST /token) and page loads keep the grants...
		$this->assertTrue( Realtime_Events_Auth::cookie_is_fresh( $reader->ID ), 'extra presence grants keep a token fresh' );
		$refreshed = rest_do_request( new WP_REST_Request( 'POST', '/realtime-events/v1/token' ) );
		$this->assertSame( 200, $refreshed->get_status() );
		$this->assertSame( array( 'private-user.' . $reader->ID, $one, $two ), $this->claims_of_cookie()['channels'] );

		// ... while the user may still join: a post made private is dropped at the next renewal.
		wp_update_post(
			array(
				'ID'          => Realtime_Events_Presence::post_id_of( $one ),
				'post_status' => 'private',
			)
		);
		rest_do_request( new WP_REST_Request( 'POST', '/realtime-events/v1/token' ) );
		$this->assertSame( array( 'private-user.' . $reader->ID, $two ), $this->claims_of_cookie()['channels'] );

		// Another user's token is never carried over.
		$this->assertSame( array(), Realtime_Events_Presence::carried_grants( (string) get_user_by( 'login', 'admin' )->ID ) );
	}

	public function test_a_changed_display_name_renews_the_token() {
		$reader = $this->reader();
		$issued = Realtime_Events_Auth::issue( $reader->ID );
		Realtime_Events_Auth::set_cookies( $issued );
		$this->assertTrue( Realtime_Events_Auth::cookie_is_fresh( $reader->ID ) );
		$old = $reader->display_name;
		wp_update_user(
			array(
				'ID'           => $reader->ID,
				'display_name' => 'Renamed Reader',
			)
		);
		try {
			$this->assertFalse( Realtime_Events_Auth::cookie_is_fresh( $reader->ID ), 'the token shows the old name' );
		} finally {
			wp_update_user(
				array(
					'ID'           => $reader->ID,
					'display_name' => $old,
				)
			);
		}
	}

	/**
	 * The shortcode's HTML and configuration are the same for every visitor and carry no
	 * secret; the channel defaults to the current post's.
	 */
	public function test_shortcode_output_is_cacheable() {
		$id   = $this->post();
		$anon = $this->render_in_post( 0, $id, '[realtime_presence]' );
		$user = $this->render_in_post( $this->reader()->ID, $id, '[realtime_presence]' );
		$this->assertSame( $anon, $user, 'identical for an anonymous visitor and a logged-in user' );
		$this->assertSame( '<div class="realtime-presence" data-channel="presence-post.' . $id . '" data-members="yes" aria-live="polite" hidden></div>', $anon['html'] );
		$this->assertStringNotContainsString( REALTIME_EVENTS_TOKEN_SECRET, implode( $anon ) );
		$this->assertStringNotContainsString( REALTIME_EVENTS_SECRET, implode( $anon ) );
		$this->assertStringContainsString( 'realtime-events-presence', $anon['queue'] );
		$this->assertMatchesRegularExpression( '/window\.RealtimePresenceConfig = (\{.*?\});/', $anon['before'] );
		preg_match( '/window\.RealtimePresenceConfig = (\{.*?\});/', $anon['before'], $m );
		$config = json_decode( $m[1], true );
		$this->assertSame( rest_url( 'realtime-events/v1/presence' ), $config['restUrl'] );
		$this->assertSame( 'realtime_token_meta', $config['metaCookie'] );
		$this->assertSame( Realtime_Events_Config::ws_url(), $config['url'] );
		$this->assertSame( '%s reading now', $config['text']['other'] );

		$this->assertStringContainsString( 'data-channel="presence-room.5" data-members="no"', $this->render_in_post( 0, $id, '[realtime_presence channel="presence-room.5" members="no"]' )['html'] );
		$this->assertSame( '', $this->render_in_post( 0, $id, '[realtime_presence channel="posts"]' )['html'], 'not a presence channel: nothing' );
		$this->assertSame( '', $this->render_in_post( 0, $id, '[realtime_presence channel="presence-<x>"]' )['html'] );
		$this->assertSame( '', $this->render_in_post( 0, 0, '[realtime_presence]' )['html'], 'no post: nothing' );

		// A post printed on another page (a blog index, an archive, another post) does not
		// make its visitors readers of it; an explicit channel works anywhere.
		$other = $this->post();
		$this->assertSame( '', $this->render_in_post( 0, $id, '[realtime_presence]', $other )['html'] );
		$this->assertSame( '', $this->render_in_post( 0, $id, '[realtime_presence]', 0 )['html'] );
		$this->assertStringContainsString( 'data-channel="presence-post.' . $id . '"', $this->render_in_post( 0, $id, '[realtime_presence channel="presence-post.' . $id . '"]', 0 )['html'] );
	}

	/**
	 * Renders a shortcode inside a post's loop with fresh script state, on the page of
	 * $page_id (default: the post itself; 0: the blog index).
	 */
	private function render_in_post( $user_id, $post_id, $code, $page_id = null ) {
		global $wp_query, $wp_the_query;
		wp_set_current_user( $user_id );
		$GLOBALS['wp_scripts'] = null; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		$configured            = new ReflectionProperty( 'Realtime_Events_Presence_Frontend', 'configured' );
		$configured->setAccessible( true );
		$configured->setValue( null, false );
		$page_id  = null === $page_id ? $post_id : $page_id;
		$saved    = array( $wp_query, $wp_the_query );
		$wp_query = $page_id ? new WP_Query( array( 'page_id' => $page_id ) ) : new WP_Query( array( 'posts_per_page' => 1 ) ); // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		$wp_the_query     = $wp_query; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		$GLOBALS['post']  = $post_id ? get_post( $post_id ) : null; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		try {
			$html = do_shortcode( $code );
		} finally {
			$GLOBALS['post']                = null; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
			list( $wp_query, $wp_the_query ) = $saved; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		}
		$scripts = wp_scripts();
		$before  = $scripts->get_data( 'realtime-events-presence', 'before' );
		return array(
			'html'   => $html,
			'before' => is_array( $before ) ? implode( "\n", array_filter( $before ) ) : '',
			'queue'  => implode( ',', $scripts->queue ),
		);
	}
}
