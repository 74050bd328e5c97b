#!/usr/bin/env python3
# Open-Meteo forecast API stand-in for the end-to-end tests: /v1/forecast with `current=`, deterministic weather, fault modes and request counts.
"""Serves GET /v1/forecast in the shape of https://api.open-meteo.com/v1/forecast.

One location answers one JSON object; comma-separated latitude/longitude lists answer a
JSON array, one object per location, in request order. Only `current=` is served (what
sensor-push asks for). Values are a pure function of the coordinates (and of the clock
for `time` and `is_day`; pin it with --now), so tests can assert them:

  latitude, longitude   the grid cell: the request rounded to --grid degrees (0.0625),
                        as the real API answers the model's cell, not the point asked
  elevation             from a table of known cities (Bogota 2640 m, Barranquilla 18 m,
                        ...) within 0.25 degrees, else derived from a hash; `elevation=`
                        overrides it as in the real API
  temperature_2m        31.5 - 0.008 * lat^2 - 0.0065 * elevation (degrees C)
  the rest              plausible and consistent (dew point from humidity, apparent
                        temperature from Steadman, surface pressure from elevation)

Invalid parameters answer HTTP 400 with {"error":true,"reason":"..."}, reason strings as
the real API words them.

Fault modes, chosen for the whole server (--mode, or POST /_mode with the mode as body or
?mode=) or per request (query `_mode=MODE`, header `X-Fixture-Mode: MODE`, or a path
prefix `/_mode/MODE/v1/forecast` for clients that build the query themselves):

  ok                      answer normally
  slow=SECONDS            sleep, then answer normally (at most --max-slow)
  429 | 500 | 503         that status with Open-Meteo's error body (429: Retry-After)
  malformed               200 with a truncated, invalid JSON body (Content-Length right)
  truncated               200 announcing the full Content-Length, half the body, close
  error-body              200 with {"error":true,"reason":"..."}
  drop                    close the connection without answering (curl: exit 52)
  reset                   reset the connection without answering (curl: exit 56)
  FAULT-then-ok=N         FAULT for the first N requests that carry this exact mode,
                          then ok (e.g. 429-then-ok=2); POST /_reset starts it over

Control and inspection: GET /_stats (counts), POST /_reset (zero counts and fault
counters), GET|POST /_mode. With --fixtures DIR, recorded responses (*.json, one object
or an array of objects, exact API shape) answer for the locations they cover (nearest
within 0.25 degrees), and `_fixture=NAME` serves DIR/NAME.json byte for byte.
"""

import argparse
import datetime as dt
import email.utils
import hashlib
import json
import math
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROG = "openmeteo_server"

# --- the weather model ---------------------------------------------------------------

# Known places, so that the cities the environments use get their real elevation and time
# zone (for timezone=auto): name, latitude, longitude, elevation (m), zone.
KNOWN_PLACES = [
    ("Bogota", 4.711, -74.0721, 2640.0, "America/Bogota"),
    ("Medellin", 6.2442, -75.5812, 1495.0, "America/Bogota"),
    ("Cali", 3.4516, -76.532, 1018.0, "America/Bogota"),
    ("Barranquilla", 10.9685, -74.7813, 18.0, "America/Bogota"),
    ("Cartagena", 10.391, -75.4794, 2.0, "America/Bogota"),
    ("Cucuta", 7.8939, -72.5078, 320.0, "America/Bogota"),
    ("Bucaramanga", 7.1193, -73.1227, 959.0, "America/Bogota"),
    ("Pereira", 4.8133, -75.6961, 1411.0, "America/Bogota"),
    ("Manizales", 5.0703, -75.5138, 2150.0, "America/Bogota"),
    ("Santa Marta", 11.2408, -74.199, 6.0, "America/Bogota"),
    ("Ibague", 4.4389, -75.2322, 1285.0, "America/Bogota"),
    ("Pasto", 1.2136, -77.2811, 2527.0, "America/Bogota"),
    ("Tunja", 5.5353, -73.3678, 2820.0, "America/Bogota"),
    ("Villavicencio", 4.142, -73.6266, 467.0, "America/Bogota"),
    ("Leticia", -4.2153, -69.9406, 96.0, "America/Bogota"),
    ("Berlin", 52.52, 13.41, 38.0, "Europe/Berlin"),
    ("New York", 40.7128, -74.006, 10.0, "America/New_York"),
    ("Delhi", 28.6139, 77.209, 216.0, "Asia/Kolkata"),
    ("Sydney", -33.8688, 151.2093, 58.0, "Australia/Sydney"),
]
KNOWN_PLACE_RADIUS = 0.25

# variable -> (kind, decimals at the default unit); the kind picks unit and conversion.
CURRENT_VARIABLES = {
    "temperature_2m": "temperature",
    "relative_humidity_2m": "percent",
    "dew_point_2m": "temperature",
    "apparent_temperature": "temperature",
    "is_day": "flag",
    "precipitation": "precipitation",
    "rain": "precipitation",
    "showers": "precipitation",
    "snowfall": "snowfall",
    "weather_code": "wmo",
    "cloud_cover": "percent",
    "pressure_msl": "pressure",
    "surface_pressure": "pressure",
    "wind_speed_10m": "wind",
    "wind_direction_10m": "direction",
    "wind_gusts_10m": "wind",
}

# The real API's reason strings (Open-Meteo's Swift sources), so clients see the same text.
REASON_LAT_RANGE = "Latitude must be in range of -90 to 90°. Given: {}."
REASON_LON_RANGE = "Longitude must be in range of -180 to 180°. Given: {}."
REASON_COUNT = "Parameter 'latitude' and 'longitude' must have the same number of elements"
REASON_EMPTY = "Parameter 'latitude' and 'longitude' must not be empty"
REASON_MAXIMUM = "Parameter 'latitude' and 'longitude' must not exceed {} coordinates."
REASON_ELEVATION_COUNT = "Parameter 'elevation' must have the same number of elements as coordinates"
REASON_TIMEZONE = "Invalid timezone"
REASON_FLOAT = "Data corrupted at path ''. Cannot initialize Float from invalid String value {}."
REASON_VARIABLE = (
    "Data corrupted at path ''. Cannot initialize SurfacePressureAndHeightVariable"
    "<VariableAndPreviousDay, VariableOrSpread<ForecastPressureVariable>, ForecastHeightVariable>"
    " from invalid String value {}."
)
REASON_ENUM = "Data corrupted at path '{}'. Cannot initialize {} from invalid String value {}."
REASON_RATE_LIMIT = "Minutely API request limit exceeded. Please try again in one minute."
REASON_INTERNAL = "Something went wrong."
REASON_UNAVAILABLE = "Service Unavailable"
REASON_ERROR_BODY = "No data is available for this location"

TEMPERATURE_UNITS = {"celsius": "°C", "fahrenheit": "°F"}
WIND_UNITS = {"kmh": "km/h", "ms": "m/s", "mph": "mp/h", "kn": "kn"}
PRECIPITATION_UNITS = {"mm": "mm", "inch": "inch"}

# Swift's Float parser, not Python's: no spaces, no underscores.
FLOAT_RE = re.compile(
    r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|nan|inf|infinity)$", re.IGNORECASE
)


class Raw(str):
    """A JSON number kept as text, so recorded files and fixed decimals ("0.00") survive."""


def to_json(value, out):
    if isinstance(value, Raw):
        out.append(value)
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (int, float)):
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            to_json(item, out)
        out.append("}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            to_json(item, out)
        out.append("]")


def dumps(value):
    out = []
    to_json(value, out)
    return "".join(out)


def error_body(reason):
    return dumps({"error": True, "reason": reason})


def fixed(value, decimals):
    text = f"{value:.{decimals}f}"
    # -0.04 rounds to "-0.0"; a reading of zero carries no sign.
    return Raw(text.lstrip("-") if float(text) == 0 else text)


def swift_float(value):
    """Swift's description of a Float: the shortest text that reads back as the same float32."""
    if math.isnan(value):
        return "nan"
    try:
        f32 = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return "inf" if value > 0 else "-inf"
    if math.isinf(f32):
        return "inf" if f32 > 0 else "-inf"
    text = repr(f32)
    for digits in range(1, 10):
        candidate = f"{f32:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(candidate)))[0] == f32:
            # Positional like Swift ("2640.0", not "2.64e+03"); exponents only far out.
            text = repr(float(candidate))
            break
    if "e" not in text and "." not in text and "n" not in text:
        text += ".0"
    return text


def uniforms(lat, lon, count):
    """`count` numbers in [0, 1) that depend only on the grid cell."""
    digest = hashlib.sha256(f"{lat:.4f},{lon:.4f}".encode()).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "big") / 2**32 for i in range(count)]


def known_place(lat, lon):
    best, best_distance = None, KNOWN_PLACE_RADIUS
    for place in KNOWN_PLACES:
        distance = math.hypot(place[1] - lat, place[2] - lon)
        if distance <= best_distance:
            best, best_distance = place, distance
    return best


def model_current(lat, lon, elevation, now_utc):
    """Every served variable at the grid cell, in SI-ish default units (C, %, mm, km/h, hPa)."""
    u = uniforms(lat, lon, 8)
    temperature = 31.5 - 0.008 * lat * lat - 0.0065 * elevation
    humidity = min(100.0, max(10.0, round(88 - 0.35 * abs(lat) - 0.006 * elevation + 10 * (u[0] - 0.5))))
    code = [0, 1, 2, 3, 3, 45, 51, 61, 63, 80][int(u[1] * 10)]
    cloud = {0: 5 * u[2], 1: 15 + 20 * u[2], 2: 40 + 30 * u[2], 45: 100}.get(code, 80 + 20 * u[2])
    amount = {51: 0.1 + 0.2 * u[3], 61: 0.4 + 0.8 * u[3], 63: 2 + 2 * u[3], 80: 1 + 2 * u[3]}.get(code, 0.0)
    rain = amount if code in (51, 61, 63) else 0.0
    showers = amount if code == 80 else 0.0
    snowfall = 0.0
    if amount and temperature < 0:
        code, rain, showers, snowfall = 73, 0.0, 0.0, amount * 0.7
    wind = 3 + 22 * u[4]
    direction = int(360 * u[5])
    gusts = wind * 1.6 + 2
    pressure_msl = 1013.0 + 10 * (u[6] - 0.5)
    surface = pressure_msl * math.exp(-elevation / 8434.0)
    gamma = math.log(humidity / 100) + 17.625 * temperature / (243.04 + temperature)
    dew_point = 243.04 * gamma / (17.625 - gamma)
    vapour = humidity / 100 * 6.105 * math.exp(17.27 * temperature / (237.7 + temperature))
    apparent = temperature + 0.33 * vapour - 0.70 * (wind / 3.6) - 4.0
    solar_hour = (now_utc.hour + now_utc.minute / 60 + lon / 15) % 24
    return {
        "temperature_2m": temperature,
        "relative_humidity_2m": humidity,
        "dew_point_2m": dew_point,
        "apparent_temperature": apparent,
        "is_day": 1 if 6 <= solar_hour < 18 else 0,
        "precipitation": amount,
        "rain": rain,
        "showers": showers,
        "snowfall": snowfall,
        "weather_code": code,
        "cloud_cover": round(cloud),
        "pressure_msl": pressure_msl,
        "surface_pressure": surface,
        "wind_speed_10m": wind,
        "wind_direction_10m": direction,
        "wind_gusts_10m": gusts,
    }


def unit_and_value(variable, value, units):
    """The unit string and the JSON number, formatted with the real API's decimals."""
    kind = CURRENT_VARIABLES[variable]
    if kind == "temperature":
        if units["temperature"] == "fahrenheit":
            return "°F", fixed(value * 9 / 5 + 32, 1)
        return "°C", fixed(value, 1)
    if kind == "percent":
        return "%", fixed(value, 0)
    if kind == "flag":
        return "", Raw(str(int(value)))
    if kind == "precipitation":
        if units["precipitation"] == "inch":
            return "inch", fixed(value / 25.4, 3)
        return "mm", fixed(value, 2)
    if kind == "snowfall":
        if units["precipitation"] == "inch":
            return "inch", fixed(value / 2.54, 3)
        return "cm", fixed(value, 2)
    if kind == "wmo":
        return "wmo code", fixed(value, 0)
    if kind == "pressure":
        return "hPa", fixed(value, 1)
    if kind == "direction":
        return "°", fixed(value, 0)
    # wind
    wind_unit = units["wind"]
    if wind_unit == "ms":
        return "m/s", fixed(value / 3.6, 2)
    if wind_unit == "mph":
        return "mp/h", fixed(value / 1.609344, 1)
    if wind_unit == "kn":
        return "kn", fixed(value / 1.852, 1)
    return "km/h", fixed(value, 1)


class BadRequest(Exception):
    """An invalid parameter: HTTP 400 with the API's error body."""


def parse_floats(values):
    out = []
    for text in values:
        for item in text.split(","):
            if not item:
                continue
            if not FLOAT_RE.match(item):
                raise BadRequest(REASON_FLOAT.format(text))
            out.append(float(item))
    return out


def joined(query, name):
    """A list parameter: comma-separated and/or repeated (`current=a,b&current=c`)."""
    items = []
    for text in query.get(name, []):
        items.extend(item for item in text.split(",") if item)
    return items


def resolve_zone(name, lat, lon):
    if name == "auto":
        place = known_place(lat, lon)
        if place:
            name = place[4]
        else:
            # No time-zone map here: the nearest whole-hour zone by longitude will do.
            hours = int(round(lon / 15))
            name = "GMT" if hours == 0 else f"Etc/GMT{-hours:+d}"
    try:
        return name, zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise BadRequest(REASON_TIMEZONE) from None


def abbreviation(zone_name, offset):
    """As the API words it today: "GMT-5" for Bogota, "GMT+5:30" for Kolkata, "GMT" at zero."""
    if offset == 0:
        return "UTC" if zone_name == "UTC" else "GMT"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"GMT{'-' if offset < 0 else '+'}{hours}" + (f":{minutes:02d}" if minutes else "")


def parse_now(text):
    """An instant in ISO 8601; without an offset it is UTC (`2026-11-22T16:45Z`, `...T16:45`)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date and time: '{text}' (e.g. 2026-11-22T16:45Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


# --- fault modes ---------------------------------------------------------------------

FAULTS = ("429", "500", "503", "malformed", "truncated", "error-body", "drop", "reset")
MODE_RE = re.compile(r"^(?:ok|slow=(?P<slow>\d+(?:\.\d+)?)|(?P<fault>[a-z0-9-]+?)(?:-then-ok=(?P<n>\d+))?)$")


def parse_mode(spec, max_slow):
    """MODE -> ("ok"|"slow"|FAULT, slow seconds or None, then-ok count or None); ValueError if bad."""
    match = MODE_RE.match(spec or "")
    if not match:
        raise ValueError(f"unknown mode '{spec}'")
    if spec == "ok":
        return "ok", None, None
    if match.group("slow") is not None:
        seconds = float(match.group("slow"))
        if seconds > max_slow:
            raise ValueError(f"mode '{spec}': at most slow={max_slow:g} (--max-slow)")
        return "slow", seconds, None
    fault = match.group("fault")
    if fault not in FAULTS:
        raise ValueError(
            f"unknown mode '{spec}' (ok, slow=S, {', '.join(FAULTS)}, or FAULT-then-ok=N)"
        )
    n = match.group("n")
    return fault, None, int(n) if n is not None else None


# --- recorded fixtures ---------------------------------------------------------------


def load_fixtures(directory):
    """(files: name -> raw bytes, places: [(lat, lon, object)]) from DIR/*.json."""
    files, places = {}, []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError as error:
        raise ValueError(f"cannot read fixtures directory {directory}: {error.strerror}") from None
    for name in names:
        path = os.path.join(directory, name)
        with open(path, "rb") as handle:
            raw = handle.read()
        try:
            # Numbers stay text so that a recorded "0.00" is served as "0.00".
            value = json.loads(raw.decode("utf-8"), parse_float=Raw, parse_int=Raw)
        except (UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"fixture {path} is not valid JSON: {error}") from None
        files[name[: -len(".json")]] = raw
        objects = value if isinstance(value, list) else [value]
        for obj in objects:
            if not isinstance(obj, dict) or "latitude" not in obj or "longitude" not in obj:
                # Error bodies and other shapes are still servable by name, not by location.
                continue
            places.append((float(obj["latitude"]), float(obj["longitude"]), obj))
    return files, places


# --- the server ----------------------------------------------------------------------


class State:
    """Counts and fault counters, shared by the handler threads."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.mode = args.mode
        self.reset()

    def reset(self):
        with self.lock:
            self.then_ok_seen = {}
            self.requests = 0
            self.locations = 0
            self.per_request = []
            self.by_mode = {}
            self.by_outcome = {}
            self.other_requests = 0
            self.fixture_hits = 0
            self.fixture_misses = 0
            self.recent = []

    def take_then_ok(self, spec, n):
        """True while the first N requests of mode `spec` are still being failed."""
        with self.lock:
            seen = self.then_ok_seen.get(spec, 0)
            self.then_ok_seen[spec] = seen + 1
            return seen < n

    def count(self, spec, outcome, locations, path, query):
        with self.lock:
            self.requests += 1
            self.locations += locations
            self.per_request.append(locations)
            del self.per_request[:-1000]
            self.by_mode[spec] = self.by_mode.get(spec, 0) + 1
            self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
            self.recent.append({"path": path, "query": query, "mode": spec, "outcome": outcome})
            del self.recent[:-200]

    def snapshot(self):
        with self.lock:
            return {
                "requests": self.requests,
                "locations": self.locations,
                "locations_per_request": list(self.per_request),
                "by_mode": dict(self.by_mode),
                "by_outcome": dict(self.by_outcome),
                "fixture_hits": self.fixture_hits,
                "fixture_misses": self.fixture_misses,
                "other_requests": self.other_requests,
                "mode": self.mode,
                "recent": list(self.recent),
            }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openmeteo-fixture/1"
    sys_version = ""
    # Headers and body go out in one write; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    # An idle keep-alive connection gives its thread back after this long.
    timeout = 60

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            sys.stderr.write(f"{PROG}: {self.address_string()} {fmt % args}\n")

    # -- responses --

    def reply(self, status, body, content_type="application/json; charset=utf-8", headers=(), length=None):
        data = body.encode("utf-8") if isinstance(body, str) else body
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data) if length is None else length}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        self.log_request(status, len(data))

    def hang_up(self, reset):
        self.close_connection = True
        try:
            if reset:
                # Linger 0 makes close() send RST; closed here, before socketserver's own
                # shutdown(SHUT_WR) could send a FIN first.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def discard_body(self):
        # A GET may carry a body; it must be read or the next request on the connection breaks.
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))

    # -- routing --

    def do_GET(self):
        self.discard_body()
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        state = self.server.state
        if path == "/_stats":
            return self.reply(200, json.dumps(state.snapshot(), ensure_ascii=False))
        if path == "/_mode":
            return self.reply(200, json.dumps({"mode": state.mode}))
        path_mode = None
        match = re.match(r"^/_mode/([^/]+)(/.*)$", path)
        if match:
            path_mode, path = urllib.parse.unquote(match.group(1)), match.group(2)
        if path.rstrip("/") == "/v1/forecast":
            return self.forecast(url, path_mode)
        with state.lock:
            state.other_requests += 1
        return self.reply(404, error_body("Not Found"))

    def do_POST(self):
        state = self.server.state
        length = self.headers.get("Content-Length", "0")
        body = self.rfile.read(int(length)) if length.isdigit() else b""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/_reset":
            state.reset()
            return self.reply(200, json.dumps({"reset": True}))
        if url.path == "/_mode":
            spec = (query.get("mode") or [body.decode("utf-8", "replace").strip()])[0]
            try:
                parse_mode(spec, state.args.max_slow)
            except ValueError as error:
                return self.reply(400, error_body(f"fixture: {error}"))
            with state.lock:
                state.mode = spec
                # A mode set anew starts its -then-ok count from zero.
                state.then_ok_seen.pop(spec, None)
            return self.reply(200, json.dumps({"mode": spec}))
        with state.lock:
            state.other_requests += 1
        return self.reply(405, error_body("Method Not Allowed"), headers=[("Allow", "GET")])

    # -- the forecast --

    def forecast(self, url, path_mode):
        state = self.server.state
        args = state.args
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        spec = (
            (query.get("_mode") or [None])[0]
            or self.headers.get("X-Fixture-Mode")
            or path_mode
            or state.mode
        )
        locations = len(joined(query, "latitude"))
        try:
            kind, slow, then_ok = parse_mode(spec, args.max_slow)
        except ValueError as error:
            state.count(spec, "bad-mode", locations, url.path, url.query)
            return self.reply(400, error_body(f"fixture: {error}"))
        if then_ok is not None and not state.take_then_ok(spec, then_ok):
            kind = "ok"
        counted = False
        if kind == "slow":
            # Counted on arrival, so a test whose client gave up already sees the request.
            state.count(spec, "slow", locations, url.path, url.query)
            counted = True
            time.sleep(slow)
            kind = "ok"

        if kind in ("429", "500", "503", "drop", "reset"):
            state.count(spec, kind, locations, url.path, url.query)
            if kind == "429":
                retry_after = (query.get("_retry_after") or [str(args.retry_after)])[0]
                return self.reply(429, error_body(REASON_RATE_LIMIT), headers=[("Retry-After", retry_after)])
            if kind == "500":
                return self.reply(500, error_body(REASON_INTERNAL))
            if kind == "503":
                return self.reply(503, error_body(REASON_UNAVAILABLE), headers=[("Retry-After", str(args.retry_after))])
            return self.hang_up(reset=(kind == "reset"))
        if kind == "error-body":
            state.count(spec, kind, locations, url.path, url.query)
            return self.reply(200, error_body(REASON_ERROR_BODY))

        fixture = (query.get("_fixture") or [None])[0]
        if fixture is not None:
            raw = self.server.fixture_files.get(fixture)
            if raw is None:
                if not counted:
                    state.count(spec, "no-fixture", locations, url.path, url.query)
                known = ", ".join(sorted(self.server.fixture_files)) or "none; start with --fixtures DIR"
                return self.reply(404, error_body(f"fixture: no recorded response '{fixture}' (have: {known})"))
            body = raw
        else:
            try:
                body = self.build(query).encode("utf-8")
            except BadRequest as error:
                if not counted:
                    state.count(spec, "bad-request", locations, url.path, url.query)
                return self.reply(400, error_body(str(error)))

        if not counted:
            state.count(spec, kind, locations, url.path, url.query)
        if kind == "malformed":
            # Cut inside the first object: valid HTTP, invalid JSON.
            return self.reply(200, body[: max(1, len(body) // 2)])
        if kind == "truncated":
            self.close_connection = True
            return self.reply(200, body[: max(1, len(body) // 2)], length=len(body))
        return self.reply(200, body)

    def build(self, query):
        state = self.server.state
        args = state.args
        started = time.perf_counter()
        for unsupported in ("hourly", "daily", "minutely_15", "current_weather"):
            if unsupported in query:
                raise BadRequest(f"fixture: only 'current' is served, not '{unsupported}'")
        latitudes = parse_floats(query.get("latitude", []))
        longitudes = parse_floats(query.get("longitude", []))
        if len(latitudes) != len(longitudes):
            raise BadRequest(REASON_COUNT)
        if not latitudes:
            raise BadRequest(REASON_EMPTY)
        if len(latitudes) > args.max_locations:
            raise BadRequest(REASON_MAXIMUM.format(args.max_locations))
        elevations = parse_floats(query.get("elevation", [])) if query.get("elevation") else None
        if elevations is not None and len(elevations) != len(latitudes):
            raise BadRequest(REASON_ELEVATION_COUNT)
        for lat, lon in zip(latitudes, longitudes):
            if not -90 <= lat <= 90:
                raise BadRequest(REASON_LAT_RANGE.format(swift_float(lat)))
            if not -180 <= lon <= 180:
                raise BadRequest(REASON_LON_RANGE.format(swift_float(lon)))
        zones = joined(query, "timezone") or ["GMT"]
        if len(zones) not in (1, len(latitudes)):
            raise BadRequest(REASON_COUNT)
        variables = joined(query, "current")
        unknown = [v for v in variables if v not in CURRENT_VARIABLES]
        if unknown:
            raise BadRequest(REASON_VARIABLE.format(",".join(query.get("current", []))))
        units = {}
        for key, names, allowed, type_name in (
            ("temperature", ("temperature_unit",), TEMPERATURE_UNITS, "TemperatureUnit"),
            ("wind", ("wind_speed_unit", "windspeed_unit"), WIND_UNITS, "WindspeedUnit"),
            ("precipitation", ("precipitation_unit",), PRECIPITATION_UNITS, "PrecipitationUnit"),
        ):
            units[key] = next(iter(allowed))  # the first is the API's default
            for name in reversed(names):  # the current spelling wins over the legacy one
                value = (query.get(name) or [None])[0]
                if value is None:
                    continue
                if value not in allowed:
                    raise BadRequest(REASON_ENUM.format(name, type_name, value))
                units[key] = value
        timeformat = (query.get("timeformat") or ["iso8601"])[0]
        if timeformat not in ("iso8601", "unixtime"):
            raise BadRequest(REASON_ENUM.format("timeformat", "Timeformat", timeformat))

        now_text = (query.get("_now") or [None])[0]
        try:
            now = parse_now(now_text) if now_text else (self.server.now or dt.datetime.now(dt.timezone.utc))
        except ValueError as error:
            raise BadRequest(f"fixture: _now: {error}") from None
        # `current` is the latest 15-minute step, as in the real API.
        step = dt.datetime.fromtimestamp(int(now.timestamp()) // 900 * 900, dt.timezone.utc)

        # Every zone is checked before any answer is built: one bad zone fails the request.
        resolved = [resolve_zone(zones[0] if len(zones) == 1 else zones[i], lat, lon) for i, (lat, lon) in enumerate(zip(latitudes, longitudes))]
        results = []
        for i, (lat, lon) in enumerate(zip(latitudes, longitudes)):
            recorded = self.recorded(lat, lon)
            if recorded is not None:
                results.append(self.from_recording(recorded, variables, units, step))
                continue
            zone_name, zone = resolved[i]
            elevation = None if elevations is None else elevations[i]
            results.append(self.synthesize(lat, lon, elevation, zone_name, zone, variables, units, timeformat, step, started))
        return dumps(results[0] if len(results) == 1 else results)

    def recorded(self, lat, lon):
        places = self.server.fixture_places
        if not places:
            return None
        best, best_distance = None, KNOWN_PLACE_RADIUS + 1e-9
        for place_lat, place_lon, obj in places:
            distance = math.hypot(place_lat - lat, place_lon - lon)
            # Strictly nearer: of two recordings of one place, the first file's wins.
            if distance < best_distance:
                best, best_distance = obj, distance
        state = self.server.state
        with state.lock:
            if best is None:
                state.fixture_misses += 1
            else:
                state.fixture_hits += 1
        return best

    def from_recording(self, recorded, variables, units, step):
        """The recorded object, its `current` cut down to what was asked (recorded values win)."""
        out = {key: value for key, value in recorded.items() if key not in ("current_units", "current")}
        if variables:
            rec_units = recorded.get("current_units", {})
            rec_current = recorded.get("current", {})
            model = None
            out_units = {"time": rec_units.get("time", "iso8601"), "interval": rec_units.get("interval", "seconds")}
            out_current = {"time": rec_current.get("time", step.strftime("%Y-%m-%dT%H:%M")), "interval": rec_current.get("interval", Raw("900"))}
            for variable in variables:
                if variable in rec_current:
                    out_units[variable] = rec_units.get(variable, "")
                    out_current[variable] = rec_current[variable]
                else:
                    # Not in the recording: the model fills it in.
                    if model is None:
                        model = model_current(float(recorded["latitude"]), float(recorded["longitude"]), float(recorded.get("elevation", 0)), step)
                    out_units[variable], out_current[variable] = unit_and_value(variable, model[variable], units)
            out["current_units"] = out_units
            out["current"] = out_current
        return out

    def synthesize(self, lat, lon, elevation, zone_name, zone, variables, units, timeformat, step, started):
        grid = self.server.state.args.grid
        cell_lat = round(lat / grid) * grid if grid > 0 else lat
        cell_lon = round(lon / grid) * grid if grid > 0 else lon
        place = known_place(lat, lon)
        if elevation is None:
            elevation = place[3] if place else float(int(300 * uniforms(cell_lat, cell_lon, 8)[7]))
        local = step.astimezone(zone)
        offset = int(local.utcoffset().total_seconds())
        out = {
            "latitude": Raw(swift_float(cell_lat)),
            "longitude": Raw(swift_float(cell_lon)),
            "generationtime_ms": (time.perf_counter() - started) * 1000,
            "utc_offset_seconds": offset,
            "timezone": zone_name,
            "timezone_abbreviation": abbreviation(zone_name, offset),
        }
        if not math.isnan(elevation):
            out["elevation"] = Raw(swift_float(elevation))
        else:
            elevation = place[3] if place else 0.0
        if variables:
            model = model_current(cell_lat, cell_lon, elevation, step)
            out_units = {"time": "iso8601" if timeformat == "iso8601" else "unixtime", "interval": "seconds"}
            out_current = {
                # Local time without an offset: utc_offset_seconds says which.
                "time": local.strftime("%Y-%m-%dT%H:%M") if timeformat == "iso8601" else int(step.timestamp()),
                "interval": 900,
            }
            for variable in variables:
                out_units[variable], out_current[variable] = unit_and_value(variable, model[variable], units)
            out["current_units"] = out_units
            out["current"] = out_current
        return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops connections when a client opens many at once.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return  # the client went away: its business, not a server fault
        sys.stderr.write(f"{PROG}: error: while answering {client_address[0]}:{client_address[1]}: {error!r}\n")


def write_atomically(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def loopback(host):
    try:
        return socket.inet_aton(host)[0] == 127
    except OSError:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address in 127.0.0.0/8 (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 (default) lets the kernel choose")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--pid-file", help="write the process id here at start")
    parser.add_argument("--mode", default="ok", help="fault mode for every request (default ok)")
    parser.add_argument("--fixtures", metavar="DIR", help="serve recorded responses from DIR/*.json")
    parser.add_argument("--now", help="pin the clock (ISO 8601, UTC unless an offset is given)")
    parser.add_argument("--grid", type=float, default=0.0625, help="grid cell size in degrees (0: echo)")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of 429/503 (default 1)")
    parser.add_argument("--max-slow", type=float, default=30.0, help="upper bound of slow=S (default 30)")
    parser.add_argument("--max-locations", type=int, default=1000, help="coordinates per request (default 1000)")
    parser.add_argument("--max-lifetime", type=float, default=3600.0, help="exit after this many seconds (default 3600)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    def fail(message, status=64):
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return status

    # Close what the caller left open (Bats' fd 3, a $(...) pipe): no one must wait on our copy.
    os.closerange(3, 65536)
    if args.pid_file:
        write_atomically(args.pid_file, f"{os.getpid()}\n")
    if not loopback(args.host):
        return fail(f"--host {args.host}: tests stay on 127.0.0.0/8")
    try:
        parse_mode(args.mode, args.max_slow)
    except ValueError as error:
        return fail(f"--mode: {error}")
    now = None
    if args.now:
        try:
            now = parse_now(args.now)
        except ValueError as error:
            return fail(f"--now: {error}")
    files, places = {}, []
    if args.fixtures:
        try:
            files, places = load_fixtures(args.fixtures)
        except ValueError as error:
            return fail(str(error), 66)

    try:
        server = Server((args.host, args.port), Handler)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port}: {error.strerror}", 69)
    server.state = State(args)
    server.now = now
    server.fixture_files = files
    server.fixture_places = places

    def stop(*_):
        # shutdown() waits for serve_forever(), which runs in this very thread: ask from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A server a test forgot to stop does not outlive the run for long.
    lifetime = threading.Timer(args.max_lifetime, stop)
    lifetime.daemon = True
    lifetime.start()

    port = server.server_address[1]
    if args.port_file:
        write_atomically(args.port_file, f"{port}\n")
    sys.stderr.write(f"{PROG}: listening on http://{args.host}:{port}/v1/forecast (mode {args.mode}, pid {os.getpid()})\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    sys.stderr.write(f"{PROG}: stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
