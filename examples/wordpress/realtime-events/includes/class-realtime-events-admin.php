<?php
/**
 * Settings -> Realtime Events: configuration (read-only), hub status, outbox, test event.
 *
 * @package RealtimeEvents
 */

defined( 'ABSPATH' ) || exit;

/**
 * The admin screen. Every action checks the manage_options capability and a nonce.
 */
class Realtime_Events_Admin {

	const PAGE       = 'realtime-events';
	const CAPABILITY = 'manage_options';

	/**
	 * Hooks.
	 */
	public static function register() {
		add_action( 'admin_menu', array( __CLASS__, 'menu' ) );
		add_action( 'admin_post_realtime_events_send_test', array( __CLASS__, 'handle_send_test' ) );
		add_action( 'admin_post_realtime_events_drain_now', array( __CLASS__, 'handle_drain_now' ) );
		add_action( 'admin_notices', array( __CLASS__, 'notices' ) );
		add_filter( 'plugin_action_links_' . plugin_basename( REALTIME_EVENTS_FILE ), array( __CLASS__, 'action_links' ) );
	}

	/**
	 * Menu entry under Settings.
	 */
	public static function menu() {
		add_options_page(
			__( 'Realtime Events', 'realtime-events' ),
			__( 'Realtime Events', 'realtime-events' ),
			self::CAPABILITY,
			self::PAGE,
			array( __CLASS__, 'render' )
		);
	}

	/**
	 * "Settings" link on the Plugins screen.
	 *
	 * @param array $links Links.
	 * @return array
	 */
	public static function action_links( $links ) {
		$url = admin_url( 'options-general.php?page=' . self::PAGE );
		array_unshift( $links, '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Settings', 'realtime-events' ) . '</a>' );
		return $links;
	}

	/**
	 * URL of the settings page.
	 *
	 * @param array $args Query args.
	 * @return string
	 */
	private static function page_url( $args = array() ) {
		return add_query_arg( $args, admin_url( 'options-general.php?page=' . self::PAGE ) );
	}

	/**
	 * Warnings on the Plugins screen and the dashboard: not configured, or events stuck.
	 */
	public static function notices() {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			return;
		}
		$screen = function_exists( 'get_current_screen' ) ? get_current_screen() : null;
		if ( ! $screen || ! in_array( $screen->id, array( 'plugins', 'dashboard' ), true ) ) {
			return;
		}
		if ( ! Realtime_Events_Config::can_publish() ) {
			printf(
				'<div class="notice notice-warning"><p>%s <a href="%s">%s</a></p></div>',
				esc_html__( 'Realtime Events: REALTIME_EVENTS_SECRET is not defined in wp-config.php; events are kept in the outbox until it is.', 'realtime-events' ),
				esc_url( self::page_url() ),
				esc_html__( 'Details', 'realtime-events' )
			);
			return;
		}
		$stats = Realtime_Events_Outbox::stats();
		if ( null !== $stats['oldest'] && time() - $stats['oldest'] > 10 * MINUTE_IN_SECONDS ) {
			printf(
				'<div class="notice notice-error"><p>%s <a href="%s">%s</a></p></div>',
				esc_html(
					sprintf(
						/* translators: 1: number of events, 2: age such as "15 mins". */
						_n( 'Realtime Events: %1$d event has been waiting for %2$s; the hub may be unreachable or WP-Cron may not run.', 'Realtime Events: %1$d events have been waiting for up to %2$s; the hub may be unreachable or WP-Cron may not run.', $stats['pending'], 'realtime-events' ),
						$stats['pending'],
						human_time_diff( $stats['oldest'] )
					)
				),
				esc_url( self::page_url() ),
				esc_html__( 'Details', 'realtime-events' )
			);
		}
	}

	/**
	 * Admin-post: queue a test event.
	 */
	public static function handle_send_test() {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to do that.', 'realtime-events' ), 403 );
		}
		check_admin_referer( 'realtime_events_send_test' );

		$channel = isset( $_POST['channel'] ) ? sanitize_text_field( wp_unslash( $_POST['channel'] ) ) : 'default';
		$message = isset( $_POST['message'] ) ? sanitize_text_field( wp_unslash( $_POST['message'] ) ) : '';
		if ( '' === $message ) {
			$message = __( 'Test event from the Realtime Events settings page.', 'realtime-events' );
		}
		$result = realtime_events_publish(
			$channel,
			'test_event',
			array(
				'title'   => __( 'Test event', 'realtime-events' ),
				'message' => $message,
			),
			array( 'source' => 'settings' )
		);
		if ( is_wp_error( $result ) ) {
			$notice = 'test-invalid';
		} elseif ( false === $result ) {
			$notice = 'test-vetoed';
		} else {
			$notice = 'test-queued';
		}
		// The event is delivered at shutdown, after this redirect went out.
		wp_safe_redirect( self::page_url( array( 'realtime-events-notice' => $notice ) ) );
		exit;
	}

	/**
	 * Admin-post: deliver due events now.
	 */
	public static function handle_drain_now() {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to do that.', 'realtime-events' ), 403 );
		}
		check_admin_referer( 'realtime_events_drain_now' );
		$stats = Realtime_Events_Outbox::drain( 10.0, 'manual' );
		wp_safe_redirect(
			self::page_url(
				array(
					'realtime-events-notice' => 'drained',
					'sent'                   => (int) $stats['sent'],
					'failed'                 => (int) $stats['failed'],
				)
			)
		);
		exit;
	}

	/**
	 * Relative time such as "3 mins ago" / "in 3 mins".
	 *
	 * @param int $time Unix time.
	 * @return string
	 */
	private static function relative( $time ) {
		$now = time();
		if ( $time <= $now ) {
			/* translators: %s: human-readable duration. */
			return sprintf( __( '%s ago', 'realtime-events' ), human_time_diff( $time, $now ) );
		}
		/* translators: %s: human-readable duration. */
		return sprintf( __( 'in %s', 'realtime-events' ), human_time_diff( $now, $time ) );
	}

	/**
	 * One configuration row.
	 *
	 * @param string $constant Constant name.
	 * @param string $value    Display value (already safe text, escaped here).
	 * @param string $note     Note (escaped here).
	 */
	private static function config_row( $constant, $value, $note ) {
		echo '<tr><th scope="row"><code>' . esc_html( $constant ) . '</code></th><td>';
		if ( '' !== $value ) {
			echo '<code>' . esc_html( $value ) . '</code>';
		}
		if ( '' !== $note ) {
			echo ( '' !== $value ? '<br>' : '' ) . '<span class="description">' . esc_html( $note ) . '</span>';
		}
		echo '</td></tr>';
	}

	/**
	 * Renders the page.
	 */
	public static function render() {
		if ( ! current_user_can( self::CAPABILITY ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to access this page.', 'realtime-events' ), 403 );
		}
		$notice = isset( $_GET['realtime-events-notice'] ) ? sanitize_key( wp_unslash( $_GET['realtime-events-notice'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$stats  = Realtime_Events_Outbox::stats();
		$error  = get_option( Realtime_Events_Outbox::ERROR_OPTION );
		$ok     = (int) get_option( Realtime_Events_Outbox::OK_OPTION, 0 );
		$next   = wp_next_scheduled( Realtime_Events_Outbox::CRON_HOOK );
		$status = Realtime_Events_Config::can_publish() ? Realtime_Events_Transport::status_check() : null;
		?>
		<div class="wrap" id="realtime-events-settings">
			<h1><?php esc_html_e( 'Realtime Events', 'realtime-events' ); ?></h1>
			<?php self::render_notice( $notice ); ?>

			<h2><?php esc_html_e( 'Hub status', 'realtime-events' ); ?></h2>
			<p id="realtime-events-hub-status">
			<?php
			if ( null === $status ) {
				echo '<span class="dashicons dashicons-warning"></span> ' . esc_html__( 'Not configured: define REALTIME_EVENTS_SECRET in wp-config.php.', 'realtime-events' );
			} elseif ( $status['ok'] ) {
				echo '<span class="dashicons dashicons-yes-alt" style="color:#008a20"></span> ';
				/* translators: %d: milliseconds. */
				echo esc_html( sprintf( __( 'Reachable: a signed test publish was accepted (HTTP 200 in %d ms).', 'realtime-events' ), $status['ms'] ) );
			} else {
				echo '<span class="dashicons dashicons-dismiss" style="color:#d63638"></span> ';
				/* translators: %s: error message. */
				echo esc_html( sprintf( __( 'Unreachable or refused: %s', 'realtime-events' ), $status['error'] ) );
				if ( 401 === $status['code'] ) {
					echo ' ' . esc_html__( '(REALTIME_EVENTS_SECRET differs from the secret of realtime_broadcast in the Caddyfile.)', 'realtime-events' );
				}
			}
			?>
			</p>

			<h2><?php esc_html_e( 'Outbox', 'realtime-events' ); ?></h2>
			<table class="form-table" role="presentation" id="realtime-events-outbox">
				<tr>
					<th scope="row"><?php esc_html_e( 'Events waiting', 'realtime-events' ); ?></th>
					<td class="realtime-events-backlog">
					<?php
					echo esc_html( number_format_i18n( $stats['pending'] ) );
					if ( $stats['retrying'] ) {
						/* translators: %s: number of events. */
						echo ' ' . esc_html( sprintf( __( '(%s failed at least once and will be retried)', 'realtime-events' ), number_format_i18n( $stats['retrying'] ) ) );
					}
					?>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Oldest waiting event', 'realtime-events' ); ?></th>
					<td class="realtime-events-oldest"><?php echo esc_html( null === $stats['oldest'] ? __( 'none', 'realtime-events' ) : self::relative( $stats['oldest'] ) ); ?></td>
				</tr>
				<?php if ( null !== $stats['next_attempt'] ) : ?>
				<tr>
					<th scope="row"><?php esc_html_e( 'Next attempt', 'realtime-events' ); ?></th>
					<td><?php echo esc_html( $stats['next_attempt'] <= time() ? __( 'due now', 'realtime-events' ) : self::relative( $stats['next_attempt'] ) ); ?></td>
				</tr>
				<?php endif; ?>
				<tr>
					<th scope="row"><?php esc_html_e( 'Last error', 'realtime-events' ); ?></th>
					<td class="realtime-events-last-error">
					<?php
					if ( is_array( $error ) && ! empty( $error['message'] ) ) {
						echo esc_html( $error['message'] ) . ' <span class="description">(' . esc_html( self::relative( (int) $error['time'] ) ) . ')</span>';
					} else {
						esc_html_e( 'none', 'realtime-events' );
					}
					?>
					</td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'Last delivery', 'realtime-events' ); ?></th>
					<td><?php echo esc_html( $ok ? self::relative( $ok ) : __( 'never', 'realtime-events' ) ); ?></td>
				</tr>
				<tr>
					<th scope="row"><?php esc_html_e( 'WP-Cron drain', 'realtime-events' ); ?></th>
					<td>
					<?php
					if ( $next ) {
						/* translators: %s: relative time. */
						echo esc_html( sprintf( __( 'every minute, next run %s', 'realtime-events' ), self::relative( (int) $next ) ) );
						if ( (int) $next < time() - 2 * MINUTE_IN_SECONDS ) {
							echo '<br><strong>' . esc_html__( 'Overdue: WP-Cron is not running. Events still go out at the end of the request that creates them, but retries wait for WP-Cron.', 'realtime-events' ) . '</strong>';
						}
					} else {
						esc_html_e( 'not scheduled (deactivate and activate the plugin)', 'realtime-events' );
					}
					if ( defined( 'DISABLE_WP_CRON' ) && DISABLE_WP_CRON ) {
						echo '<br><span class="description">' . esc_html__( 'DISABLE_WP_CRON is set: a system cron job must request wp-cron.php every minute.', 'realtime-events' ) . '</span>';
					}
					?>
					</td>
				</tr>
			</table>
			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>">
				<input type="hidden" name="action" value="realtime_events_drain_now">
				<?php wp_nonce_field( 'realtime_events_drain_now' ); ?>
				<?php submit_button( __( 'Deliver waiting events now', 'realtime-events' ), 'secondary', 'submit', false ); ?>
			</form>

			<h2><?php esc_html_e( 'Send a test event', 'realtime-events' ); ?></h2>
			<form method="post" action="<?php echo esc_url( admin_url( 'admin-post.php' ) ); ?>" id="realtime-events-test-form">
				<input type="hidden" name="action" value="realtime_events_send_test">
				<?php wp_nonce_field( 'realtime_events_send_test' ); ?>
				<table class="form-table" role="presentation">
					<tr>
						<th scope="row"><label for="realtime-events-channel"><?php esc_html_e( 'Channel', 'realtime-events' ); ?></label></th>
						<td><input name="channel" id="realtime-events-channel" type="text" class="regular-text" value="default" pattern="[A-Za-z0-9._\-:@=]{1,128}" required></td>
					</tr>
					<tr>
						<th scope="row"><label for="realtime-events-message"><?php esc_html_e( 'Message', 'realtime-events' ); ?></label></th>
						<td><input name="message" id="realtime-events-message" type="text" class="regular-text" maxlength="200" value="<?php echo esc_attr__( 'Hello from WordPress', 'realtime-events' ); ?>"></td>
					</tr>
				</table>
				<?php submit_button( __( 'Send test event', 'realtime-events' ), 'primary', 'submit', false ); ?>
			</form>

			<?php self::render_webhook(); ?>

			<h2><?php esc_html_e( 'Configuration', 'realtime-events' ); ?></h2>
			<p><?php esc_html_e( 'These values come from constants in wp-config.php and cannot be changed here. Secrets are never shown.', 'realtime-events' ); ?></p>
			<table class="form-table" role="presentation" id="realtime-events-config">
				<?php
				self::config_row(
					'REALTIME_EVENTS_BROADCAST_URL',
					Realtime_Events_Config::broadcast_url(),
					Realtime_Events_Config::broadcast_url_is_default() ? __( 'Not defined: using the site\'s own address.', 'realtime-events' ) : ''
				);
				$secret = Realtime_Events_Config::secret();
				self::config_row(
					'REALTIME_EVENTS_SECRET',
					Realtime_Events_Config::mask( $secret ),
					'' === $secret ? __( 'Not defined: events are kept in the outbox and not sent.', 'realtime-events' ) : __( 'Must equal the secret of realtime_broadcast.', 'realtime-events' )
				);
				self::config_row(
					'REALTIME_EVENTS_WS_URL',
					Realtime_Events_Config::ws_url(),
					null === Realtime_Events_Config::constant( 'REALTIME_EVENTS_WS_URL' ) ? __( 'Not defined: the site\'s own host and /realtime/ws.', 'realtime-events' ) : ''
				);
				$token_secret = Realtime_Events_Config::token_secret();
				self::config_row(
					'REALTIME_EVENTS_TOKEN_SECRET',
					Realtime_Events_Config::mask( $token_secret ),
					'' === $token_secret ? __( 'Not defined: no private channels.', 'realtime-events' ) : __( 'Must equal the token_secret of realtime_ws.', 'realtime-events' )
				);
				$webhook_source = Realtime_Events_Config::webhook_secret_source();
				self::config_row(
					'REALTIME_EVENTS_WEBHOOK_SECRET',
					'REALTIME_EVENTS_WEBHOOK_SECRET' === $webhook_source ? Realtime_Events_Config::mask( Realtime_Events_Config::webhook_secret() ) : '',
					'REALTIME_EVENTS_WEBHOOK_SECRET' === $webhook_source ? __( 'Must equal the secret of the hub\'s webhook.', 'realtime-events' ) : ( '' === $webhook_source ? __( 'Not defined, nor REALTIME_EVENTS_SECRET: webhooks are refused.', 'realtime-events' ) : __( 'Not defined: webhooks are verified with REALTIME_EVENTS_SECRET.', 'realtime-events' ) )
				);
				self::config_row(
					'REALTIME_EVENTS_TOKEN_COOKIE',
					Realtime_Events_Config::token_cookie(),
					__( 'Must equal the token_cookie of realtime_ws.', 'realtime-events' )
				);
				?>
			</table>
		</div>
		<?php
	}

	/**
	 * The webhook section: the URL and Caddyfile lines for the hub, and what arrived.
	 */
	private static function render_webhook() {
		$url    = Realtime_Events_Webhook::url();
		$source = Realtime_Events_Config::webhook_secret_source();
		$status = Realtime_Events_Webhook::status();
		$env    = 'REALTIME_EVENTS_WEBHOOK_SECRET' === $source ? 'REALTIME_WEBHOOK_SECRET' : 'REALTIME_SECRET';
		$lines  = "realtime {\n\thub blog {\n\t\twebhook " . $url . " {\n\t\t\tsecret {env." . $env . "}\n\t\t}\n\t}\n}";
		?>
		<h2 id="realtime-events-webhook"><?php esc_html_e( 'Webhooks (presence)', 'realtime-events' ); ?></h2>
		<p><?php esc_html_e( 'The hub tells WordPress who joins and leaves presence channels by POSTing signed webhooks to this URL. They feed the "Online now" dashboard widget and the realtime_events_webhook actions.', 'realtime-events' ); ?></p>
		<table class="form-table" role="presentation" id="realtime-events-webhook-status">
			<tr>
				<th scope="row"><?php esc_html_e( 'Webhook URL', 'realtime-events' ); ?></th>
				<td><code class="realtime-events-webhook-url"><?php echo esc_html( $url ); ?></code></td>
			</tr>
			<tr>
				<th scope="row"><?php esc_html_e( 'In the Caddyfile', 'realtime-events' ); ?></th>
				<td>
					<pre class="realtime-events-webhook-caddyfile" style="tab-size:4;-moz-tab-size:4;background:#f6f7f7;border:1px solid #dcdcde;padding:8px 12px;margin:0 0 6px;overflow:auto;"><?php echo esc_html( $lines ); ?></pre>
					<span class="description">
					<?php
					/* translators: 1: environment variable, 2: constant. */
					echo esc_html( sprintf( __( 'in the hub\'s settings (use your hub\'s name), with %1$s set to the value of %2$s.', 'realtime-events' ), $env, '' === $source ? 'REALTIME_EVENTS_WEBHOOK_SECRET' : $source ) );
					?>
					</span>
				</td>
			</tr>
			<tr>
				<th scope="row"><?php esc_html_e( 'Last webhook', 'realtime-events' ); ?></th>
				<td class="realtime-events-webhook-last">
				<?php
				if ( $status['last_ok'] ) {
					$events = (int) $status['last_ok']['events'];
					echo esc_html(
						sprintf(
							/* translators: 1: relative time, 2: number of events in the last delivery, 3: number of deliveries. */
							_n( 'received %1$s with %2$d event; %3$d deliveries so far', 'received %1$s with %2$d events; %3$d deliveries so far', $events, 'realtime-events' ),
							self::relative( (int) $status['last_ok']['time'] ),
							$events,
							(int) $status['deliveries']
						)
					);
				} else {
					esc_html_e( 'none yet', 'realtime-events' );
				}
				?>
				</td>
			</tr>
			<tr>
				<th scope="row"><?php esc_html_e( 'Last refused', 'realtime-events' ); ?></th>
				<td class="realtime-events-webhook-refused">
				<?php
				if ( $status['last_error'] ) {
					echo esc_html( $status['last_error']['message'] ) . ' <span class="description">(' . esc_html( self::relative( (int) $status['last_error']['time'] ) ) . ')</span>';
				} else {
					esc_html_e( 'none', 'realtime-events' );
				}
				?>
				</td>
			</tr>
		</table>
		<?php
	}

	/**
	 * Result notice after an action.
	 *
	 * @param string $notice Notice key.
	 */
	private static function render_notice( $notice ) {
		$messages = array(
			'test-queued'  => array( 'success', __( 'Test event queued; it is sent right after this page loaded.', 'realtime-events' ) ),
			'test-invalid' => array( 'error', __( 'The test event was refused: check the channel name (A-Z a-z 0-9 . _ - : @ =).', 'realtime-events' ) ),
			'test-vetoed'  => array( 'warning', __( 'A realtime_events_before_publish filter dropped the test event.', 'realtime-events' ) ),
		);
		if ( 'drained' === $notice ) {
			$sent   = isset( $_GET['sent'] ) ? absint( $_GET['sent'] ) : 0; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			$failed = isset( $_GET['failed'] ) ? absint( $_GET['failed'] ) : 0; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			$messages['drained'] = array(
				$failed ? 'error' : 'success',
				/* translators: 1: delivered events, 2: failed events. */
				sprintf( __( 'Delivered: %1$d. Failed: %2$d.', 'realtime-events' ), $sent, $failed ),
			);
		}
		if ( ! isset( $messages[ $notice ] ) ) {
			return;
		}
		printf(
			'<div class="notice notice-%1$s is-dismissible"><p>%2$s</p></div>',
			esc_attr( $messages[ $notice ][0] ),
			esc_html( $messages[ $notice ][1] )
		);
	}
}
