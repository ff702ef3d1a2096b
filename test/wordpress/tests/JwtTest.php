<?php
/**
 * Subscriber tokens (HS256 JWT), their cookie and the REST refresh route.
 *
 * @package RealtimeEventsTest
 */

/**
 * JWT, Realtime_Events_Auth.
 */
class JwtTest extends RealtimeTestCase {

	protected function tearDown(): void {
		unset( $_COOKIE['realtime_token'], $_COOKIE['realtime_token_meta'] );
		parent::tearDown();
	}

	public function test_known_vector() {
		// Computed independently with python3 (hmac + base64.urlsafe_b64encode).
		$expected = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwNjAwLCJjaGFubmVscyI6WyJwcml2YXRlLXVzZXIuNDIiXX0.2bi4t6IlYWtZba6GNpuAII4h5GT0kBmhSwDeeXPdKMI';
		$this->assertSame(
			$expected,
			Realtime_Events_JWT::encode(
				array(
					'sub'      => '42',
					'iat'      => 1700000000,
					'exp'      => 1700000600,
					'channels' => array( 'private-user.42' ),
				),
				'token-secret'
			)
		);
	}

	public function test_decode_checks_signature_algorithm_and_expiry() {
		$token  = Realtime_Events_JWT::encode( array( 'sub' => '7', 'exp' => 2000 ), 'k' );
		$claims = Realtime_Events_JWT::decode( $token, 'k', 1999 );
		$this->assertSame( '7', $claims['sub'] );

		$this->assertSame( 'token_expired', Realtime_Events_JWT::decode( $token, 'k', 2000 )->get_error_code() );
		$this->assertSame( 'token_invalid', Realtime_Events_JWT::decode( $token, 'other', 1000 )->get_error_code() );

		list( $h, $p, $s ) = explode( '.', $token );
		$forged            = $h . '.' . Realtime_Events_JWT::b64url( '{"sub":"1","exp":2000}' ) . '.' . $s;
		$this->assertSame( 'token_invalid', Realtime_Events_JWT::decode( $forged, 'k', 1000 )->get_error_code() );

		$none = Realtime_Events_JWT::b64url( '{"alg":"none","typ":"JWT"}' ) . '.' . $p . '.';
		$this->assertSame( 'token_invalid', Realtime_Events_JWT::decode( $none, 'k', 1000 )->get_error_code() );
		$this->assertSame( 'token_invalid', Realtime_Events_JWT::decode( 'garbage', 'k', 1000 )->get_error_code() );
	}

	public function test_issue_for_a_user() {
		$user   = get_user_by( 'login', 'reader' );
		$now    = time();
		$issued = Realtime_Events_Auth::issue( $user->ID, $now );

		$this->assertNotNull( $issued );
		$claims = Realtime_Events_JWT::decode( $issued['token'], REALTIME_EVENTS_TOKEN_SECRET, $now );
		$this->assertIsArray( $claims );
		$this->assertSame( (string) $user->ID, $claims['sub'], 'sub is the user id as a string (RFC 7519 StringOrURI)' );
		$this->assertSame( array( 'private-user.' . $user->ID ), $claims['channels'] );
		$this->assertSame( $now + 600, $claims['exp'], 'short-lived: 10 minutes by default' );
		list( $header ) = explode( '.', $issued['token'] );
		$this->assertSame( array( 'alg' => 'HS256', 'typ' => 'JWT' ), json_decode( Realtime_Events_JWT::b64url_decode( $header ), true ) );
	}

	public function test_token_filters() {
		$this->hook(
			'realtime_events_token_ttl',
			function () {
				return 120;
			}
		);
		$this->hook(
			'realtime_events_user_channels',
			function ( $channels, $user_id ) {
				$channels[] = 'private-team.*';
				$channels[] = 'bad channel';
				return $channels;
			},
			10,
			2
		);
		$issued = Realtime_Events_Auth::issue( 5, 1000 );
		$this->assertSame( 1120, $issued['exp'] );
		$this->assertSame( array( 'private-user.5', 'private-team.*' ), $issued['channels'] );
		$this->assertNull( Realtime_Events_Auth::issue( 0 ), 'no token for anonymous visitors' );
	}

	public function test_cookie_freshness() {
		$user = get_user_by( 'login', 'reader' );
		$this->assertFalse( Realtime_Events_Auth::cookie_is_fresh( $user->ID ), 'no cookie' );

		$issued                          = Realtime_Events_Auth::issue( $user->ID );
		$_COOKIE['realtime_token']       = $issued['token'];
		$_COOKIE['realtime_token_meta']  = '{}';
		$this->assertTrue( Realtime_Events_Auth::cookie_is_fresh( $user->ID ) );
		$this->assertFalse( Realtime_Events_Auth::cookie_is_fresh( $user->ID + 1 ), 'token of another user' );
		$this->assertFalse( Realtime_Events_Auth::cookie_is_fresh( $user->ID, time() + 301 ), 'less than half its life left' );
		$_COOKIE['realtime_token'] = $issued['token'] . 'x';
		$this->assertFalse( Realtime_Events_Auth::cookie_is_fresh( $user->ID ), 'bad signature' );
	}

	public function test_rest_route_requires_a_logged_in_user() {
		$server = rest_get_server();
		$routes = $server->get_routes();
		$this->assertArrayHasKey( '/realtime-events/v1/token', $routes );
		$this->assertNotEmpty( $routes['/realtime-events/v1/token'][0]['permission_callback'] );

		wp_set_current_user( 0 );
		$response = rest_do_request( new WP_REST_Request( 'POST', '/realtime-events/v1/token' ) );
		$this->assertSame( 401, $response->get_status() );

		$user = get_user_by( 'login', 'reader' );
		wp_set_current_user( $user->ID );
		$response = rest_do_request( new WP_REST_Request( 'POST', '/realtime-events/v1/token' ) );
		$this->assertSame( 200, $response->get_status() );
		$data = $response->get_data();
		$this->assertSame( array( 'private-user.' . $user->ID ), $data['channels'] );
		$this->assertGreaterThan( time(), $data['expires'] );
		$this->assertArrayNotHasKey( 'token', $data, 'the token only travels in the HttpOnly cookie' );
		$this->assertStringContainsString( 'no-store', $response->get_headers()['Cache-Control'] );

		$response = rest_do_request( new WP_REST_Request( 'GET', '/realtime-events/v1/token' ) );
		$this->assertSame( 404, $response->get_status(), 'POST only' );
	}

	/**
	 * The shortcode's HTML and inline configuration are the same for every visitor and
	 * carry no secret.
	 */
	public function test_shortcode_output_is_cacheable() {
		$anon = $this->render_shortcode( 0, '[realtime_notifications]' );
		$user = get_user_by( 'login', 'reader' );
		$auth = $this->render_shortcode( $user->ID, '[realtime_notifications]' );
		$this->assertSame( $anon, $auth, 'identical for an anonymous visitor and a logged-in user' );

		$this->assertStringContainsString( '<div id="realtime-notification-area"', $anon['html'] );
		$this->assertStringNotContainsString( REALTIME_EVENTS_SECRET, implode( $anon ) );
		$this->assertStringNotContainsString( REALTIME_EVENTS_TOKEN_SECRET, implode( $anon ) );
		$this->assertStringNotContainsString( wp_create_nonce( 'wp_rest' ), implode( $auth ) );

		$this->assertMatchesRegularExpression( '/window\.RealtimeEventsConfig = (\{.*?\});/', $anon['before'] );
		preg_match( '/window\.RealtimeEventsConfig = (\{.*?\});/', $anon['before'], $m );
		$config = json_decode( $m[1], true );
		$this->assertSame( array( 'default', 'posts' ), $config['channels'] );
		$this->assertSame( '#realtime-notification-area', $config['container'] );
		$home = wp_parse_url( home_url() );
		$this->assertSame( 'ws://' . $home['host'] . ( isset( $home['port'] ) ? ':' . $home['port'] : '' ) . '/realtime/ws', $config['url'] );

		$custom = $this->render_shortcode( 0, '[realtime_notifications channels="news, bad channel,post.7" private="no"]' );
		preg_match( '/window\.RealtimeEventsConfig = (\{.*?\});/', $custom['before'], $m );
		$this->assertSame( array( 'news', 'post.7' ), json_decode( $m[1], true )['channels'] );
		$this->assertStringNotContainsString( 'realtime_token_meta', $custom['before'] );
	}

	/**
	 * Renders a shortcode with fresh script state.
	 */
	private function render_shortcode( $user_id, $code ) {
		wp_set_current_user( $user_id );
		$GLOBALS['wp_scripts'] = null; // phpcs:ignore WordPress.WP.GlobalVariablesOverride
		$printed = new ReflectionProperty( 'Realtime_Events_Frontend', 'printed' );
		$printed->setAccessible( true );
		$printed->setValue( null, false );
		$html    = do_shortcode( $code );
		$scripts = wp_scripts();
		$before  = $scripts->get_data( 'realtime-events', 'before' );
		return array(
			'html'   => $html,
			'before' => is_array( $before ) ? implode( "\n", array_filter( $before ) ) : '',
			'src'    => $scripts->registered['realtime-events']->src,
			'queue'  => implode( ',', $scripts->queue ),
		);
	}
}
