<?php
/**
 * Must-use plugin of the scratch test site (test/wordpress/setup.sh): no outgoing mail.
 *
 * @package RealtimeEventsTest
 */

defined( 'ABSPATH' ) || exit;

add_filter( 'pre_wp_mail', '__return_true' );
