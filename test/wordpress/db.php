<?php
/**
 * Creates or drops the scratch database of a test run (no mysql client needed).
 * Usage: php db.php create|drop <host:port> <user> <password> <database>
 *
 * @package RealtimeEventsTest
 */

if ( 'cli' !== PHP_SAPI || $argc < 6 ) {
	fwrite( STDERR, "usage: php db.php create|drop host:port user password database\n" );
	exit( 2 );
}
list( , $action, $hostport, $user, $password, $name ) = $argv;
if ( ! preg_match( '/^[A-Za-z0-9_]{1,64}$/', $name ) ) {
	fwrite( STDERR, "db.php: bad database name\n" );
	exit( 2 );
}
list( $host, $port ) = array_pad( explode( ':', $hostport, 2 ), 2, '3306' );
mysqli_report( MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT );
try {
	$db = new mysqli( $host, $user, $password, '', (int) $port );
	if ( 'create' === $action ) {
		$db->query( "CREATE DATABASE IF NOT EXISTS `$name` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" );
	} elseif ( 'drop' === $action ) {
		$db->query( "DROP DATABASE IF EXISTS `$name`" );
	} else {
		throw new RuntimeException( "unknown action $action" );
	}
} catch ( Throwable $e ) {
	fwrite( STDERR, 'db.php: ' . $e->getMessage() . "\n" );
	exit( 1 );
}
