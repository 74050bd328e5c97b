-- bench/db-backup's wide table: @rows rows of about 500 bytes of values, the same for the same @seed.
-- Every value comes from CRC32/SHA2 of (@seed, id), never from RAND(), so a row does not
-- depend on the order the server computes rows in. Kinds that make a dump slow or lossy: a
-- JSON (LONGTEXT) column of nested objects, a BLOB of random bytes, and strings with accents,
-- emoji, NUL, tab, newline, \x01, quotes and backslashes.
-- Run as: SET @seed = 42, @rows = 1000000; then this file, in the database to fill.
CREATE TABLE wide (
  id INT PRIMARY KEY,
  doc JSON NOT NULL,
  note TEXT,
  payload BLOB,
  amount DECIMAL(14,4),
  created_at DATETIME(6) NOT NULL,
  label VARCHAR(255)
) DEFAULT CHARSET=utf8mb4;

INSERT INTO wide
SELECT id,
  JSON_OBJECT(
    'id', id,
    'station', JSON_OBJECT(
      'name', ELT(1 + r1 % 6, 'Bogotá', 'São Paulo', 'Zürich', 'Kraków', '東京', 'Reykjavík'),
      'geo', JSON_ARRAY((r1 % 180000) / 1000 - 90, (r2 % 360000) / 1000 - 180)),
    'readings', JSON_ARRAY(
      JSON_OBJECT('t', r1 % 86400, 'temperature', (r1 % 6000) / 100 - 20, 'humidity', r2 % 101),
      JSON_OBJECT('t', r2 % 86400, 'temperature', (r2 % 6000) / 100 - 20, 'humidity', r3 % 101)),
    'meta', JSON_OBJECT(
      'firmware', CONCAT('v', r1 % 9, '.', r2 % 20, '.', r3 % 100),
      'ok', r3 % 3 = 0,
      'comment', CONCAT('say "hi"\\n', CHAR(1 USING utf8mb4), ' ünïcödé 😀 tab\there'))),
  CONCAT('Nota ', id, ': ', ELT(1 + r2 % 5,
    'it''s "fine" \\ really\nsecond line',
    'naïve café — déjà vu 🌧️🌡️',
    'NUL here:\0 and \\x01:', CHAR(1 USING utf8mb4),
    'tab\tseparated\tvalues\r\n',
    '{"looks": "like json", "but": "is text"}'), ' ', REPEAT('·', r3 % 12)),
  LEFT(CONCAT(UNHEX(SHA2(CONCAT(@seed, '/', id, '/1'), 512)),
              UNHEX(SHA2(CONCAT(@seed, '/', id, '/2'), 512)),
              UNHEX(SHA2(CONCAT(@seed, '/', id, '/3'), 512))), 64 + r1 % 97),
  (r2 % 100000000) / 10000 - 5000,
  '2025-01-01' + INTERVAL r1 % 31536000 SECOND + INTERVAL r2 % 1000000 MICROSECOND,
  CONCAT(ELT(1 + r3 % 7, 'Ñandú «quoted»', 'O''Brien "Bob"', 'C:\\path\\to\\file', '🇨🇴🦜🐢',
             CONCAT('ctl', CHAR(0, 1, 9, 10 USING utf8mb4), 'end'), 'Ελληνικά', 'plain'),
         ' #', r1 % 1000)
FROM (SELECT seq AS id,
             CRC32(CONCAT(@seed, ':', seq)) AS r1,
             CRC32(CONCAT(seq, ':', @seed, ':b')) AS r2,
             CRC32(CONCAT(@seed, '-', seq, '-c')) AS r3
      FROM seq_1_to_4294967295 WHERE seq <= @rows) AS g;
