-- Whether the database answers: one row, one column, the value 1.
SELECT 1;
