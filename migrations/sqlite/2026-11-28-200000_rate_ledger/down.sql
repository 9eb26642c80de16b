DROP TABLE rate_reservations;
