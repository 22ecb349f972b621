#!/usr/bin/env python3
"""The HTTP API (../shared/HTTP-API.md) against a real ovmsd, with Python's
standard HTTP client and raw sockets.

    test_http.py OVMSD OVMS_ADMIN SHARED_DIR [TEST...] [-TEST...]

TEST runs only the tests named; -TEST leaves one out (CTest runs the slow ones apart, in parallel).

Starts nodes on free loopback ports with fresh databases (owners and vehicles
made with ovms-admin), plays the car with the shared conformance client, and
stops every node by PID. Prints one line per test, then "N passed, N failed".
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

# OVMSD_BIN and OVMS_ADMIN_BIN in the environment replace the first two (sanitizer stages)
OVMSD = os.path.abspath(os.environ.get("OVMSD_BIN", sys.argv[1]))
ADMIN = os.path.abspath(os.environ.get("OVMS_ADMIN_BIN", sys.argv[2]))
SHARED = sys.argv[3]
# the firmware's simulated car, next to the server in the same build tree (or OVMS_CAR_BIN)
OVMS_CAR = os.path.abspath(os.environ.get("OVMS_CAR_BIN", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1]))), "firmware", "ovms-car")))
ONLY = [a for a in sys.argv[4:] if not a.startswith("-")]
SKIP = [a[1:] for a in sys.argv[4:] if a.startswith("-")]
sys.path.insert(0, os.path.join(SHARED, "conformance"))
import ovmsclient  # noqa: E402

OWNER, OWNER_PW = "owner1", "Owner1-pw"
OTHER, OTHER_PW = "owner2", "Owner2-pw"
CAR, CAR_PW = "TESTCAR", "NETPASS1"
CAR2, CAR2_PW = "OTHERCAR", "OTHERPW2"

TESTS = []


def test(func):
    TESTS.append(func)
    return func


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def free_port():
    # below the ephemeral range: ovmsd listens with SO_REUSEPORT
    for _ in range(1000):
        p = random.randint(15000, 31999)
        try:
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            s.close()
            return p
        except OSError:
            pass
    raise RuntimeError("no free port")


class Node:
    """One ovmsd with owner1 (TESTCAR) and owner2 (OTHERCAR)."""

    def __init__(self, *flags, node_id="HTTPTEST", fixtures=True, port=None, files=None):
        self.dir = tempfile.mkdtemp(prefix="ovms-http-")
        for name, data in (files or {}).items():     # into its working directory, before it starts
            os.makedirs(os.path.dirname(os.path.join(self.dir, name)), exist_ok=True)
            with open(os.path.join(self.dir, name), "wb") as f:
                f.write(data)
        self.db = os.path.join(self.dir, "node.db")
        self.port, self.http = port or free_port(), free_port()
        self.node_id = node_id
        admin = [ADMIN, "--db", self.db]
        steps = [["--node", node_id, "owner", "add", OWNER, "--password", OWNER_PW],
                 ["owner", "add", OTHER, "--password", OTHER_PW],
                 ["vehicle", "add", CAR, "--password", CAR_PW, "--owner", OWNER],
                 ["vehicle", "add", CAR2, "--password", CAR2_PW, "--owner", OTHER]]
        for args in steps if fixtures else [["--node", node_id, "owner", "list"]]:
            subprocess.run(admin + args, check=True, stdout=subprocess.DEVNULL)
        self.log = open(os.path.join(self.dir, "ovmsd.log"), "w")
        self.proc = subprocess.Popen([OVMSD, "--db", self.db, "--listen", "127.0.0.1:%d" % self.port,
                                      "--http", "127.0.0.1:%d" % self.http, "--workers", "2",
                                      "--node-id", node_id, "--log-level", "info"] + list(flags),
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.http), 1).close()
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("ovmsd did not start")

    def request(self, method, path, body=None, headers=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if not conn:
            c.close()
        return r, data

    def raw(self, data, wait=2.0):
        """Bytes to the HTTP port; everything that comes back until the close or wait."""
        s = socket.create_connection(("127.0.0.1", self.http), 5)
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except socket.timeout:
            pass
        s.close()
        return out

    def car(self):
        c = ovmsclient.Connection("127.0.0.1", self.port, name="car")
        c.login("C", CAR, CAR_PW)
        return c

    def log_text(self):
        self.log.flush()
        with open(os.path.join(self.dir, "ovmsd.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(15)
        self.log.close()
        check(rc == 0, "ovmsd did not stop cleanly (status %d)" % rc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """Two nodes, MP-S peers of each other and on one redis-server (started and stopped by PID):
    the fixtures are made on N1 and reach N2 by replication."""

    def __init__(self, *flags):
        self.redis_port = free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.redis_port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        p1, p2 = free_port(), free_port()
        common = ["--redis", "127.0.0.1:%d" % self.redis_port] + list(flags)
        self.n1 = Node("--peer", "HTTPN2:secret-n", *common, node_id="HTTPN1", port=p1)
        self.n2 = Node("--peer", "HTTPN1:secret-n@127.0.0.1:%d" % p1, *common, node_id="HTTPN2",
                       fixtures=False, port=p2)
        deadline = time.time() + 20
        while time.time() < deadline:
            r, _ = self.n2.request("GET", "/api/vehicles?" + creds())
            if r.status == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("the owners did not reach N2")

    def stop(self):
        try:
            self.n1.stop()
            self.n2.stop()
        finally:
            self.redis.terminate()
            self.redis.wait(10)


def creds(user=OWNER, pw=OWNER_PW):
    return "username=%s&password=%s" % (user, pw)


def json_body(r, data):
    check(r.getheader("Content-Type") == "application/json", "JSON content type: %r" % r.getheader("Content-Type"))
    check(data.endswith(b"\n"), "a JSON answer ends in a newline")
    return json.loads(data)


def sorted_keys(data):
    """Keys in the order they appear, per object: the reference sorts them."""
    return json.loads(data, object_pairs_hook=lambda pairs: [k for k, _ in pairs])


# ---- the engine ---------------------------------------------------------------------------------

@test
def engine_answers(node):
    r, data = node.request("GET", "/nothing/here")
    check(r.status == 404 and r.reason == "not found" and data == b"not found\n", "root 404: %d %s" % (r.status, data))
    check(r.getheader("Access-Control-Allow-Origin") == "*", "root 404 has CORS")
    check(r.getheader("Content-Type") == "text/plain", "text/plain")
    for h in ("Date", "Expires", "Cache-Control", "Content-Length"):
        check(r.getheader(h), "header %s" % h)
    check(r.getheader("Cache-Control") == "max-age=0", "Cache-Control: max-age=0")
    r, data = node.request("GET", "/api/VEHICLES")
    check(r.status == 404 and r.reason == "Unrecongised API call" and data == b"Unrecognised API call\n",
          "unknown API call: %d %r %s" % (r.status, r.reason, data))
    for path in ("/api", "/api/", "//api/vehicles", "/API/vehicles"):
        r, _ = node.request("GET", path)
        check(r.status == 404, "%s is a 404" % path)


@test
def methods_and_bad_requests(node):
    out = node.raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 501 not implemented\r\n") and b"Allow: GET,PUT,POST,DELETE\r\n" in out,
          "HEAD is 501 with Allow: %r" % out[:200])
    check(out.endswith(b"501 not implemented\n"), "501 body")
    out = node.raw(b"get / HTTP/1.1\r\n\r\n")
    check(b" 501 not implemented\r\n" in out.split(b"\r\n")[0] + b"\r\n", "lower-case get is 501: %r" % out[:80])
    out = node.raw(b"hello\r\n\r\n")
    check(b" 400 bad request" in out and out.endswith(b"400 bad request\n"), "garbage is 400: %r" % out[:80])
    out = node.raw(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")
    check(b" 599 garbled headers" in out, "garbled headers are 599: %r" % out[:80])
    out = node.raw(b"GET / HTTP/3.0\r\n\r\n")
    check(b" 506 " in out.split(b"\r\n")[0] or b" 400 " in out.split(b"\r\n")[0], "HTTP/3 refused: %r" % out[:80])


@test
def bounds(node):
    out = node.raw(b"GET /api/vehicles HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    check(b" 431 " in out.split(b"\r\n")[0], "headers over 8 KiB are 431: %r" % out[:80])
    out = node.raw(b"POST /api/token HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
    check(b" 413 " in out.split(b"\r\n")[0], "a body over 64 KiB is 413: %r" % out[:80])
    # many headers
    out = node.raw(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n")
    check(b" 431 " in out.split(b"\r\n")[0], "too many headers are 431: %r" % out[:80])
    # still serving
    r, _ = node.request("GET", "/api/vehicles?" + creds())
    check(r.status == 200, "still serving after the bad requests")


@test
def keep_alive_and_pipelining(node):
    c = http.client.HTTPConnection("127.0.0.1", node.http, timeout=10)
    for _ in range(3):
        r, data = node.request("GET", "/api/vehicles?" + creds(), conn=c)
        check(r.status == 200 and r.getheader("Connection") == "keep-alive", "keep-alive answers")
    c.close()
    out = node.raw(b"GET /x HTTP/1.0\r\n\r\n")
    check(out.startswith(b"HTTP/1.0 404 not found\r\n") and b"Connection: close\r\n" in out, "1.0 closes: %r" % out[:120])
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
    out = node.raw(reqs + b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n", wait=5)
    check(out.count(b"HTTP/1.1 404 not found\r\n") == 51, "51 pipelined answers, got %d" % out.count(b"HTTP/1.1 404"))


@test
def a_polling_connection_moves_to_its_vehicles_worker(node):
    # vehicle requests on one keep-alive connection: it moves to the vehicle's home worker between
    # two of them (with 2 workers, half the time); answers and the connection go on the same,
    # pipelined requests included, and whichever worker the other owner's vehicle lives on
    s = socket.create_connection(("127.0.0.1", node.http), 5)
    s.settimeout(5)
    paths = ["/api/status/%s?%s" % (CAR, creds())] * 6 + ["/api/status/%s?%s" % (CAR2, creds(OTHER, OTHER_PW))] * 4
    got = b""
    for i, path in enumerate(paths):
        batch = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()
        s.sendall(batch * (2 if i % 3 == 2 else 1))          # sometimes two at once
        want = (2 if i % 3 == 2 else 1)
        while got.count(b"HTTP/1.1 200 Ok\r\n") < want:
            chunk = s.recv(65536)
            check(chunk, "the connection stays open (request %d)" % i)
            got += chunk
        check(got.count(b"HTTP/1.1 200 Ok\r\n") == want and b"Connection: keep-alive" in got, "answer %d: %r" % (i, got[:200]))
        got = b""
    s.close()


@test
def a_kept_answer_never_outlives_the_data(node):
    # polls within one second are answered from the kept answer; every new message changes it
    car = node.car()
    c = http.client.HTTPConnection("127.0.0.1", node.http, timeout=10)
    for soc in range(50, 70):
        car.send("S%d,K,220,0,done,standard,300,280" % soc)
        deadline = time.time() + 5
        while True:
            r, data = node.request("GET", "/api/status/%s?%s" % (CAR, creds()), conn=c)
            got = json.loads(data).get("soc")
            if got == str(soc) or time.time() > deadline:
                break
        check(got == str(soc), "the answer follows the car: %s, want %d" % (got, soc))
        for _ in range(3):                       # the same again, kept
            r, data = node.request("GET", "/api/status/%s?%s" % (CAR, creds()), conn=c)
            check(json.loads(data)["soc"] == str(soc), "kept answer: %s" % data[:80])
    c.close()
    car.close()


@test
def cors_preflight(node):
    r, data = node.request("OPTIONS", "/api/status/" + CAR)
    check(r.status == 204, "OPTIONS on /api is 204: %d" % r.status)
    check(r.getheader("Access-Control-Allow-Origin") == "*", "allow origin")
    check(r.getheader("Access-Control-Allow-Methods") == "GET, PUT, POST, DELETE", "allow methods")
    check(r.getheader("Access-Control-Allow-Headers") == "Content-Type, Authorization", "allow headers")
    check(r.getheader("Access-Control-Max-Age") == "600", "max age")
    r, _ = node.request("OPTIONS", "/other")
    check(r.status == 501, "OPTIONS elsewhere is 501: %d" % r.status)


# ---- credentials and sessions --------------------------------------------------------------------

@test
def authentication(node):
    r, data = node.request("GET", "/api/vehicles")
    check(r.status == 401 and r.reason == "Unauthorized" and data == b"Authentication failed\n", "no credentials: 401")
    r, data = node.request("GET", "/api/vehicles?" + creds(pw="wrong"))
    check(r.status == 401, "a wrong password: 401")
    r, data = node.request("GET", "/api/vehicles?username=nobody&password=x")
    check(r.status == 401, "an unknown owner: 401")
    r, data = node.request("GET", "/api/vehicles?username=%s&password=" % OWNER)
    check(r.status == 401, "an empty password never matches")
    r, data = node.request("GET", "/api/vehicles?" + creds())
    check(r.status == 200, "owner1 with its password: %d %s" % (r.status, data))
    v = json_body(r, data)
    check(v == [{"id": CAR, "v_apps_connected": 0, "v_btcs_connected": 0, "v_net_connected": 0}], "vehicles: %s" % v)
    check(sorted_keys(data) == [["id", "v_apps_connected", "v_btcs_connected", "v_net_connected"]], "sorted keys")
    import base64
    basic = base64.b64encode(("%s:%s" % (OTHER, OTHER_PW)).encode()).decode()
    r, data = node.request("GET", "/api/vehicles", headers={"Authorization": "Basic " + basic})
    check(r.status == 200 and json.loads(data)[0]["id"] == CAR2, "Basic authentication: %s" % data)
    log = node.log_text()
    check(OWNER_PW not in log and OTHER_PW not in log, "no password in the log")


@test
def sessions(node):
    r, data = node.request("GET", "/api/cookie?" + creds())
    check(r.status == 200 and r.reason == "Ok" and data == b"Login ok\n", "login: %d %s" % (r.status, data))
    cookie = r.getheader("Set-Cookie")
    m = re.fullmatch(r"ovmsapisession=([0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}); Path=/; HttpOnly",
                     cookie or "")
    check(m, "session cookie: %r" % cookie)
    sid = m.group(1)
    r, data = node.request("GET", "/api/vehicles", headers={"Cookie": "ovmsapisession=" + sid})
    check(r.status == 200, "the cookie authenticates")
    r, data = node.request("GET", "/api/vehicles", headers={"Cookie": "a=b; ovmsapisession=" + sid})
    check(r.status == 200, "after another cookie and '; '")
    r, data = node.request("GET", "/api/vehicles", headers={"Cookie": "a=b;ovmsapisession=" + sid})
    check(r.status == 401, "';' without a space does not split (as the reference)")
    # a cookie wins over URL credentials of another owner
    r, data = node.request("GET", "/api/vehicles?" + creds(OTHER, OTHER_PW), headers={"Cookie": "ovmsapisession=" + sid})
    check(json.loads(data)[0]["id"] == CAR, "the cookie's owner, not the URL's")
    r, data = node.request("DELETE", "/api/cookie", headers={"Cookie": "ovmsapisession=" + sid})
    check(r.status == 200 and data == b"Logout ok\n", "logout")
    r, data = node.request("GET", "/api/vehicles", headers={"Cookie": "ovmsapisession=" + sid})
    check(r.status == 401, "a deleted session no longer authenticates")
    r, data = node.request("DELETE", "/api/cookie?" + creds())
    check(r.status == 200 and data == b"Logout ok\n", "logout with URL credentials still says ok")


@test
def sessions_slide():
    node = Node("--timeout-api", "10")
    try:
        r, _ = node.request("GET", "/api/cookie?" + creds())
        sid = re.search(r"ovmsapisession=([^;]+)", r.getheader("Set-Cookie")).group(1)
        h = {"Cookie": "ovmsapisession=" + sid}
        for _ in range(4):                       # 12 s of use, past the 10 s lifetime
            time.sleep(3)
            r, _ = node.request("GET", "/api/vehicles", headers=h)
            check(r.status == 200, "a session in use stays (sliding expiry)")
        time.sleep(11.2)
        r, _ = node.request("GET", "/api/vehicles", headers=h)
        check(r.status == 401, "an unused session ends timeout_api after its last use")
    finally:
        node.stop()


@test
def rate_limit():
    node = Node("--ratelimit-http-burst", "5", "--ratelimit-http-delay", "0", "--ratelimit-http-exempt", "192.0.2.1")
    try:
        codes = [node.request("GET", "/nothing")[0].status for _ in range(5)]
        check(codes == [404] * 5, "the burst passes: %s" % codes)
        r, data = node.request("GET", "/nothing")
        check(r.status == 429 and r.reason == "Too many requests" and data == b"", "then 429: %d" % r.status)
        check(r.getheader("Retry-After") == "60", "Retry-After")
    finally:
        node.stop()
    # refused requests are held (here 3 s) but at most 8 per address: the 9th is answered at once
    node = Node("--ratelimit-http-burst", "1", "--ratelimit-http-delay", "3", "--ratelimit-http-exempt", "192.0.2.1")
    try:
        node.request("GET", "/nothing")
        socks = []
        for _ in range(9):
            s = socket.create_connection(("127.0.0.1", node.http), 5)
            s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        t0 = time.time()
        answered = []
        for s in socks:
            s.settimeout(0.1)
            try:
                if s.recv(100).startswith(b"HTTP/1.1 429"):
                    answered.append(s)
            except socket.timeout:
                pass
        check(len(answered) == 1 and time.time() - t0 < 2, "one of 9 answered at once: %d" % len(answered))
        for s in socks:
            if s not in answered:
                s.settimeout(6)
                check(s.recv(100).startswith(b"HTTP/1.1 429"), "the held ones after the delay")
            s.close()
        check(time.time() - t0 > 2.5, "held for the delay")
    finally:
        node.stop()
    node = Node()    # loopback is exempt by default
    try:
        codes = {node.request("GET", "/nothing")[0].status for _ in range(200)}
        check(codes == {404}, "loopback is not limited by default: %s" % codes)
    finally:
        node.stop()


# ---- API tokens (§3.6, §6.3-§6.5) ---------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def make_token(node, body, auth=None):
    r, data = node.request("POST", "/api/token?" + (auth or creds()), body=body, headers=FORM)
    return r, data


@test
def api_tokens(node):
    r, data = make_token(node, "application=myapp&purpose=testing&permit=auth,session")
    check(r.status == 201 and r.reason == "Created", "token made: %d %s" % (r.status, data))
    t = json_body(r, data)
    check(sorted(t) == ["application", "owner", "permit", "purpose", "token"], "keys: %s" % t)
    check(t["owner"] == OWNER and t["permit"] == "auth,session" and t["application"] == "myapp", "fields: %s" % t)
    tok = t["token"]
    check(re.fullmatch(r"[0-9a-f]{64}", tok), "64 lower-case hex: %s" % tok)
    # the token is a password: URL, Basic, Bearer; read endpoints yes, sessions no (right 'session' given here)
    r, data = node.request("GET", "/api/vehicles?username=%s&password=%s" % (OWNER, tok))
    check(r.status == 200 and json.loads(data)[0]["id"] == CAR, "token as the password: %d" % r.status)
    r, data = node.request("GET", "/api/vehicles", headers={"Authorization": "Bearer " + tok})
    check(r.status == 200 and json.loads(data)[0]["id"] == CAR, "Bearer token: %d" % r.status)
    r, data = node.request("GET", "/api/vehicles?username=%s&password=%s" % (OTHER, tok))
    check(r.status == 401, "another owner's name with the token: 401")
    r, data = node.request("GET", "/api/cookie?username=%s&password=%s" % (OWNER, tok))
    check(r.status == 200, "permit 'session' opens a session: %d" % r.status)
    # defaults, and a default 'auth' token's limits
    r, data = make_token(node, "")
    d = json_body(r, data)
    check(r.status == 201 and d["application"] == "notspecified" and d["purpose"] == "notspecified"
          and d["permit"] == "auth", "defaults: %s" % d)
    auth_tok = d["token"]
    r, data = node.request("POST", "/api/token?" + creds() + "&application=url&permit=*", body="", headers=FORM)
    check(json_body(r, data)["application"] == "notspecified", "URL parameters are not read (as the reference)")
    with_auth = "username=%s&password=%s" % (OWNER, auth_tok)
    r, data = node.request("GET", "/api/cookie?" + with_auth)
    check(r.status == 403 and data == b"Insufficient rights\n", "an 'auth' token opens no session: %d" % r.status)
    r, data = node.request("GET", "/api/token?" + with_auth)
    check(r.status == 403, "nor manages tokens: %d" % r.status)
    r, data = node.request("PUT", "/api/charge/%s?%s" % (CAR, with_auth))
    check(r.status == 403, "nor sends car commands: %d" % r.status)
    r, data = node.request("GET", "/api/status/%s?%s" % (CAR, with_auth))
    check(r.status == 200, "but reads the vehicle: %d" % r.status)
    # a token.admin token cannot mint wider rights (S5)
    r, data = make_token(node, "permit=token.admin,auth")
    admin_tok = json_body(r, data)["token"]
    r, data = make_token(node, "permit=*", auth="username=%s&password=%s" % (OWNER, admin_tok))
    check(r.status == 403, "a token.admin token cannot mint '*': %d" % r.status)
    r, data = make_token(node, "permit=auth", auth="username=%s&password=%s" % (OWNER, admin_tok))
    check(r.status == 201, "but can mint within its rights: %d" % r.status)
    # bad values
    r, data = make_token(node, "application=" + "a" * 33)
    check(r.status == 400 and data == b"Invalid parameter: application\n", "too long: %d %r" % (r.status, data))
    r, data = make_token(node, "purpose=a%2Cb")
    check(r.status == 400, "a comma in purpose: %d" % r.status)
    # the listing: masked, sorted keys, all strings
    r, data = node.request("GET", "/api/token?" + creds())
    lst = json_body(r, data)
    check(r.status == 200 and len(lst) == 5, "5 tokens listed: %s" % lst)
    check([(x["created"], x["token"]) for x in lst] == sorted((x["created"], x["token"]) for x in lst),
          "ordered by created, then token")
    first = [x for x in lst if x["application"] == "myapp"][0]
    check(sorted(first) == ["application", "created", "lastused", "owner", "permit", "purpose", "refreshed", "token"],
          "listing keys: %s" % first)
    check(first["token"] == tok[:8] + "\u2026" and all(isinstance(v, str) for v in first.values()), "masked: %s" % first)
    check(tok not in data.decode(), "no secret in the listing")
    check(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first["created"]), "created: %s" % first["created"])
    # delete: by prefix, by the whole token, unknown ones say ok, none is 404
    r, data = node.request("DELETE", "/api/token/%s?%s" % (tok[:8], creds()))
    check(r.status == 200 and json_body(r, data) == {"owner": OWNER, "token": tok[:8]}, "deleted by prefix: %s" % data)
    r, _ = node.request("GET", "/api/vehicles", headers={"Authorization": "Bearer " + tok})
    check(r.status == 401, "a deleted token no longer logs in")
    r, data = node.request("DELETE", "/api/token/%s?%s" % (auth_tok, creds()))
    check(r.status == 200, "deleted whole")
    r, data = node.request("DELETE", "/api/token/%s?%s" % ("0" * 64, creds()))
    check(r.status == 200 and json_body(r, data)["token"] == "0" * 64, "an unknown token: 200 (F18)")
    r, data = node.request("DELETE", "/api/token?" + creds())
    check(r.status == 404 and r.reason == "Token missing" and data == b"Token not specified\n", "no token: %d" % r.status)
    r, data = node.request("GET", "/api/token?" + creds(OTHER, OTHER_PW))
    check(json_body(r, data) == [], "another owner sees none of them")
    log = node.log_text()
    check(tok not in log and admin_tok not in log, "no token in the log")


@test
def a_token_logs_in_over_v2_and_mqtt_only_with_the_rights(node):
    r, data = make_token(node, "permit=v2")
    v2 = json_body(r, data)["token"]
    r, data = make_token(node, "permit=auth")
    plain = json_body(r, data)["token"]
    r, data = make_token(node, "permit=mqtt")
    mq = json_body(r, data)["token"]
    c = ovmsclient.Connection("127.0.0.1", node.port, name="app")
    c.send_raw(("MP-A 1 %s %s %s\r\n" % (OWNER, v2, CAR)).encode())
    line = c.recv_raw_line(5)
    check(line and line.startswith(("MP-S 1 %s %s" % (OWNER, CAR)).encode()), "scheme 1 with a v2 token: %r" % line)
    c.close()
    c = ovmsclient.Connection("127.0.0.1", node.port, name="app")
    c.send_raw(("MP-A 1 %s %s %s\r\n" % (OWNER, plain, CAR)).encode())
    closed, got = c.wait_closed(5)
    check(closed and b"MP-S" not in got, "an 'auth' token: closed without a welcome: %r" % got)
    c.close()
    for tok, want in ((mq, 200), (plain, 403), (v2, 403)):
        r, _ = node.request("POST", "/mqapi/auth", body="username=%s&password=%s" % (OWNER, tok), headers=FORM)
        check(r.status == want, "/mqapi/auth: %d, want %d" % (r.status, want))


# ---- WebSocket /apiv2 on the v2 port (§12) ------------------------------------------------------

class WS:
    """A WebSocket client made by hand (RFC 6455 frames), as the test's own second implementation."""

    def __init__(self, port, first_line=b"GET /apiv2 HTTP/1.1", extra=b"", tls=None):
        import base64
        self.s = socket.create_connection(("127.0.0.1", port), 5)
        if tls:
            self.s = tls.wrap_socket(self.s, server_hostname="localhost")
        self.key = base64.b64encode(os.urandom(16))
        self.buf = b""
        self.s.sendall(first_line + b"\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + self.key + b"\r\n" + extra + b"\r\n")

    def handshake(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                return None
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode()

    @staticmethod
    def frame(payload, opcode=1, fin=True, mask=True):
        hdr = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr += bytes([mbit | n])
        elif n < 65536:
            hdr += bytes([mbit | 126]) + n.to_bytes(2, "big")
        else:
            hdr += bytes([mbit | 127]) + n.to_bytes(8, "big")
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send(self, payload, **kw):
        self.s.sendall(self.frame(payload if isinstance(payload, bytes) else payload.encode(), **kw))

    def recv(self, timeout=5):
        """(opcode, payload) of the next frame, or None at EOF/timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                if len(self.buf) >= 2:
                    n = self.buf[1] & 0x7F
                    at = 2
                    if n == 126:
                        n, at = int.from_bytes(self.buf[2:4], "big"), 4
                    elif n == 127:
                        n, at = int.from_bytes(self.buf[2:10], "big"), 10
                    check(not self.buf[1] & 0x80, "server frames are not masked")
                    if len(self.buf) >= at + n:
                        op, fin = self.buf[0] & 0x0F, self.buf[0] & 0x80
                        check(fin, "server frames are not fragmented")
                        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
                        return op, payload
                chunk = self.s.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            return None

    def text(self, timeout=5):
        f = self.recv(timeout)
        check(f and f[0] == 1, "a text frame: %r" % (f,))
        check(b"\r" not in f[1] and b"\n" not in f[1], "no line end in a frame: %r" % f[1])
        return f[1].decode()

    def texts_until(self, prefix, timeout=5):
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.text(deadline - time.time())
            got.append(t)
            if t.startswith(prefix):
                return got
        raise AssertionError("no %s in %s" % (prefix, got))

    def close(self):
        self.s.close()


@test
def websocket_apiv2_scheme1(node):
    import base64
    import hashlib
    ws = WS(node.port, extra=b"Sec-WebSocket-Protocol: chat, ovms\r\n")
    head = ws.handshake()
    check(head and head.startswith("HTTP/1.1 101 "), "101: %r" % head)
    want = base64.b64encode(hashlib.sha1(ws.key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
    check("Sec-WebSocket-Accept: " + want in head and "Upgrade: WebSocket" in head, "accept: %r" % head)
    check("Sec-WebSocket-Protocol: ovms" in head, "ovms selected when offered")
    car = node.car()
    car.send("S80,K,220,0,done,standard,300,280")
    time.sleep(0.3)
    # the welcome and a message in one TCP write, with a trailing LF in the first frame
    ws.s.sendall(WS.frame(("MP-A 1 %s %s %s\n" % (OWNER, OWNER_PW, CAR)).encode()) + WS.frame(b"A"))
    t = ws.text()
    check(t.startswith("MP-S 1 %s %s " % (OWNER, CAR)), "scheme 1 welcome: %r" % t)
    burst = ws.texts_until("a")
    check(burst[0] == "Z1" and any(x.startswith("S80,K") for x in burst), "login burst then a: %s" % burst)
    car.expect("Z1", timeout=5, desc="Z1: the car sees the WebSocket app")
    # a fragmented message (C3 + 0), a ping between, an unmasked frame: each answered
    ws.send("C3", fin=False)
    ws.send(b"hi", opcode=9)
    ws.send("0", opcode=0)
    f = ws.recv()
    check(f == (10, b"hi"), "ping answered with pong: %r" % (f,))
    reply = ws.texts_until("c30")
    check(reply[-1].startswith("c30,"), "the reassembled C30 answered: %s" % reply)
    ws.send("C30\r\n", mask=False)
    reply = ws.texts_until("c30")
    check(reply[-1].startswith("c30,"), "an unmasked frame with CR LF: %s" % reply)
    # close answered with close, then the connection ends
    ws.send(b"\x03\xe8", opcode=8)
    f = ws.recv()
    check(f and f[0] == 8 and f[1][:2] == b"\x03\xe8", "close answered: %r" % (f,))
    check(ws.recv(2) is None, "then the TCP connection closes")
    ws.close()
    car.close()


@test
def websocket_origins():
    node = Node("--ws-origins", "https://app.example")
    try:
        ws = WS(node.port, extra=b"Origin: https://evil.example\r\n")
        head = ws.handshake()
        check(head and head.startswith("HTTP/1.1 403"), "another Origin: 403: %r" % head)
        ws.close()
        ws = WS(node.port, extra=b"Origin: https://app.example\r\n")
        check(ws.handshake().startswith("HTTP/1.1 101"), "the listed Origin")
        ws.close()
    finally:
        node.stop()


@test
def websocket_scheme0_limits_and_bad_upgrades(node):
    # scheme 0 in a frame: the server's welcome, then RC4 lines, one per frame
    ws = WS(node.port, first_line=b"GET /apiv2/ HTTP/1.1")
    check(ws.handshake().startswith("HTTP/1.1 101"), "the /apiv2/ form too")
    token = "WsClientToken0123456789"
    import hmac
    import hashlib
    import base64
    digest = base64.b64encode(hmac.new(CAR_PW.encode(), token.encode(), hashlib.md5).digest()).decode()
    ws.send("MP-A 0 %s %s %s" % (token, digest, CAR))
    t = ws.text()
    check(t.startswith("MP-S 0 "), "scheme 0 welcome: %r" % t)
    nxt = ws.text()
    check(re.fullmatch(r"[A-Za-z0-9+/=]+", nxt), "then base64 lines in frames: %r" % nxt)
    ws.close()
    # a message over 4096 bytes: close 1009
    ws = WS(node.port)
    ws.handshake()
    ws.send("x" * 5000)
    f = ws.recv()
    check(f and f[0] == 8 and f[1][:2] == (1009).to_bytes(2, "big"), "1009: %r" % (f,))
    ws.close()
    # garbage after the upgrade: random frames, bad opcodes, fragments out of order, raw junk;
    # each connection ends with a close or a TCP close, and the node keeps serving
    rnd = random.Random(7)
    for i in range(60):
        ws = WS(node.port)
        ws.handshake()
        junk = b""
        for _ in range(rnd.randint(1, 6)):
            kind = rnd.randint(0, 3)
            if kind == 0:
                junk += os.urandom(rnd.randint(1, 300))
            else:
                junk += WS.frame(os.urandom(rnd.randint(0, 200)), opcode=rnd.choice([0, 1, 2, 3, 8, 9, 10, 11, 15]),
                                 fin=rnd.random() < 0.7, mask=rnd.random() < 0.8)
        try:
            ws.s.sendall(junk)
        except OSError:
            pass
        ws.close()
    ws = WS(node.port)
    check(ws.handshake().startswith("HTTP/1.1 101"), "still serving after the garbage")
    ws.send("MP-A 1 %s %s %s" % (OWNER, OWNER_PW, CAR))
    check(ws.text().startswith("MP-S 1 "), "and logging in")
    ws.close()
    # a query string in the first line: closed without an answer
    ws = WS(node.port, first_line=b"GET /apiv2?x=1 HTTP/1.1")
    check(ws.handshake() is None, "a query string is not the upgrade")
    ws.close()
    # no upgrade headers: 400 and closed
    s = socket.create_connection(("127.0.0.1", node.port), 5)
    s.sendall(b"GET /apiv2 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    data = s.recv(4096)
    check(data.startswith(b"HTTP/1.1 400"), "without upgrade headers: %r" % data)
    s.close()


# ---- /metrics (Prometheus text format) ---------------------------------------------------------

def parse_prometheus(text):
    """A strict reader of the text format 0.0.4: every sample named, typed and helped, a family's
    lines together, no series twice, numbers that parse, histograms cumulative and complete.
    Returns {(name, frozenset(labels)): value} and {family: type}."""
    samples, types, helps, seen_families, current = {}, {}, set(), [], None
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
    check(text.endswith("\n"), "the text ends with a newline")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            check(name not in helps, "HELP once: %s" % name)
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            check(typ in ("counter", "gauge", "histogram", "summary", "untyped"), "type: %s" % line)
            check(name not in types, "TYPE once: %s" % name)
            check(name in helps, "HELP before TYPE: %s" % name)
            types[name] = typ
            seen_families.append(name)
            current = name
            continue
        check(line and not line.startswith("#"), "no other comments or blank lines: %r" % line)
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        check(m, "a sample line: %r" % line)
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        base = re.sub(r"_(bucket|sum|count)$", "", name) if types.get(current) == "histogram" else name
        check(base == current, "%s within its family (%s)" % (name, current))
        pairs = label_re.findall(labels)
        check(",".join('%s="%s"' % kv for kv in pairs) == labels, "labels: %r" % labels)
        key = (name, frozenset(pairs))
        check(key not in samples, "series once: %s" % line)
        samples[key] = float(value)
    for fam, typ in types.items():
        if typ != "histogram":
            continue
        buckets = sorted(((float("inf") if dict(k[1])["le"] == "+Inf" else float(dict(k[1])["le"])), v)
                         for k, v in samples.items() if k[0] == fam + "_bucket")
        check(buckets and buckets[-1][0] == float("inf"), "%s has +Inf" % fam)
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "%s cumulative" % fam)
        check(buckets[-1][1] == samples[(fam + "_count", frozenset())], "%s +Inf = count" % fam)
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


@test
def metrics(node):
    car = node.car()
    car.send("S80,K,220,0,done,standard,300,280")
    app = ovmsclient.Connection("127.0.0.1", node.port, name="app")
    app.login("A", CAR, CAR_PW)
    app.read_login_burst()
    car.send("D1,2,3")
    app.expect(lambda m: m.startswith("D"), timeout=5)
    car.send("h5,0,*-LOG-Metrics,1,86400,x")
    car.expect(lambda m: m.startswith("h"), timeout=5)
    app.send("C7,hello")
    car.expect(lambda m: m.startswith("C7"), timeout=5)
    car.send("c7,0,ok")
    app.expect(lambda m: m.startswith("c7"), timeout=5)
    r, data = node.request("GET", "/metrics")
    check(r.status == 200 and r.getheader("Content-Type") == "text/plain; version=0.0.4", "200 text: %d" % r.status)
    samples, types = parse_prometheus(data.decode())
    check(metric(samples, "ovms_connections", role="car") == 1, "one car connected")
    check(metric(samples, "ovms_connections", role="app") >= 1, "an app connected")
    check(metric(samples, "ovms_logins_total", role="car") >= 1, "car logins counted")
    check(metric(samples, "ovms_messages_received_total", code="S") >= 1, "S received")
    check(metric(samples, "ovms_messages_sent_total", code="D") >= 1, "D sent")
    check(metric(samples, "ovms_commands_total", outcome="sent") >= 1, "a command sent")
    check(metric(samples, "ovms_commands_total", outcome="replied") >= 1, "a command replied")
    check(metric(samples, "ovms_relay_seconds_count", ) >= 1, "relays observed")
    check(metric(samples, "ovms_history_ack_seconds_count") >= 1, "h acknowledgements observed")
    check(metric(samples, "ovms_store_commit_seconds_count") >= 1, "commits observed")
    check(metric(samples, "ovms_store_queue_depth") is not None, "queue depth")
    check(types["ovms_relay_seconds"] == "histogram" and types["ovms_logins_total"] == "counter", "types")
    check(metric(samples, "ovms_http_responses_total", **{"class": "2xx"}) >= 0, "http answers")
    r, _ = node.request("POST", "/metrics")
    check(r.status == 405, "GET only: %d" % r.status)
    car.close()
    app.close()


@test
def metrics_only_for_listed_addresses():
    node = Node("--metrics-allow", "192.0.2.7")
    try:
        r, data = node.request("GET", "/metrics")
        check(r.status == 403 and data == b"Forbidden\n", "not listed: %d" % r.status)
    finally:
        node.stop()


# ---- /file (§10) ------------------------------------------------------------------------------

@test
def static_files(node):
    os.makedirs(os.path.join(node.dir, "httpfiles"), exist_ok=True)
    with open(os.path.join(node.dir, "httpfiles", "hello.html"), "wb") as f:
        f.write(b"text/html; charset=utf-8\r\n<p>hi</p>\n")
    os.makedirs(os.path.join(node.dir, "httpfiles", "sub"), exist_ok=True)
    r, data = node.request("PUT", "/file/hello.html")
    check(r.status == 200 and r.reason == "ok" and data == b"<p>hi</p>\n", "any method: %d %r" % (r.status, data))
    check(r.getheader("Content-Type") == "text/html; charset=utf-8", "type line without CR: %r" % r.getheader("Content-Type"))
    check(r.getheader("Connection") == "close" and r.getheader("Access-Control-Allow-Origin") is None, "close, no CORS")
    check(r.getheader("Content-Length") == str(len(data)), "with its length")
    for target in ("/file/hello.html?v=1", "/file/missing", "/file/sub", "/file/..", "/file/", "/file/a%2Fb",
                   "/file/../node.db"):
        r, data = node.request("GET", target)
        check(r.status == 404 and data == b"not found\n" and r.getheader("Access-Control-Allow-Origin") is None,
              "%s: 404: %d" % (target, r.status))


# ---- across the nodes of a cluster --------------------------------------------------------------

@test
def across_nodes():
    cl = Cluster()
    try:
        n1, n2 = cl.n1, cl.n2
        car = n1.car()
        car.send("S80,K,220,0,done,standard,300,280")
        app = ovmsclient.Connection("127.0.0.1", n1.port, name="app")
        app.login("A", CAR, CAR_PW)
        time.sleep(0.5)
        # /api/vehicles on N2 counts what N1 holds (Redis), for a vehicle N2 does not watch
        r, data = n2.request("GET", "/api/vehicles?" + creds())
        v = json.loads(data)[0]
        check(v["v_net_connected"] == 1 and v["v_apps_connected"] == 1, "cluster-wide counts: %s" % v)
        app.close()
        car.expect("Z0", timeout=5)
        # an HTTP session on N2 is an app of the car on N1 (its Z), and sees the car there
        r, _ = n2.request("GET", "/api/cookie?" + creds())
        hs = {"Cookie": re.search(r"(ovmsapisession=[^;]+)", r.getheader("Set-Cookie")).group(1)}
        r, data = n2.request("GET", "/api/vehicle/%s" % CAR, headers=hs)
        v = json.loads(data)
        check(r.status == 200 and v["v_net_connected"] == 1, "N2 sees the car on N1: %s" % v)
        car.expect("Z1", timeout=5, desc="Z1 for the HTTP session on N2")
        n2.request("DELETE", "/api/vehicle/%s" % CAR, headers=hs)
        car.expect("Z0", timeout=5, desc="Z0 when it disconnects")
        # a command on N2 for the car on N1: over the bus, answered with the car's reply
        req = Async(n2, "PUT", "/api/charge/%s?%s&mode=range" % (CAR, creds()))
        got = car.expect(lambda m: m.startswith("C10"), timeout=10)
        check(got == "C10,3", "the command reached the car on N1: %s" % got)
        car.send("c10,0")
        status, _, data = req.get()
        check(status == 200 and json.loads(data) == {"command": 10, "response": ["10,0"], "result": 0, "text": ""},
              "answered through N2: %d %s" % (status, data))
        # a multi-line reply (C3) comes back whole
        req = Async(n2, "GET", "/api/parameters/%s?%s" % (CAR, creds()))
        car.expect("C3", timeout=10)
        for k in range(3):
            car.send("c3,0,%d,3,p%d" % (k, k))
        status, _, data = req.get()
        check(status == 200 and json.loads(data)["parameters"] == ["p0", "p1", "p2"], "C3 across: %s" % data)
        # the car leaves N1 while a command waits on N2: 503
        req = Async(n2, "PUT", "/api/lock/%s?%s" % (CAR, creds()))
        car.expect(lambda m: m.startswith("C20"), timeout=10)
        car.close()
        status, _, data = req.get()
        check(status == 503 and json.loads(data)["text"] == "vehicle disconnected", "503 when it goes: %s" % data)
        r, data = n2.request("PUT", "/api/lock/%s?%s" % (CAR, creds()))
        check(r.status == 503 and json.loads(data)["text"] == "vehicle not connected", "then not connected: %s" % data)
        # a token made on N1 logs in on N2 (RK replicated)
        r, data = n1.request("POST", "/api/token?" + creds(), body="permit=auth", headers=FORM)
        tok = json.loads(data)["token"]
        deadline, status = time.time() + 10, 0
        while time.time() < deadline and status != 200:
            status = n2.request("GET", "/api/vehicles", headers={"Authorization": "Bearer " + tok})[0].status
            time.sleep(0.1)
        check(status == 200, "the token works on N2: %d" % status)
        r, data = n2.request("DELETE", "/api/token/%s?%s" % (tok[:8], creds()))
        deadline, status = time.time() + 10, 200
        while time.time() < deadline and status == 200:
            status = n1.request("GET", "/api/vehicles", headers={"Authorization": "Bearer " + tok})[0].status
            time.sleep(0.1)
        check(status == 401, "removed on N2, refused on N1: %d" % status)
        # a session made on N1 is valid on N2 (Redis); ended on N2, it ends on N1 within 5 s
        r, _ = n1.request("GET", "/api/cookie?" + creds())
        sid = re.search(r"ovmsapisession=([^;]+)", r.getheader("Set-Cookie")).group(1)
        h = {"Cookie": "ovmsapisession=" + sid}
        r, data = n2.request("GET", "/api/vehicles", headers=h)
        check(r.status == 200 and json.loads(data)[0]["id"] == CAR, "N1's session on N2: %d" % r.status)
        r, _ = n2.request("DELETE", "/api/cookie", headers=h)
        check(n2.request("GET", "/api/vehicles", headers=h)[0].status == 401, "ended on N2")
        time.sleep(5.5)
        check(n1.request("GET", "/api/vehicles", headers=h)[0].status == 401, "and on N1 after the recheck")
        r, data = n2.request("GET", "/metrics")
        samples, _ = parse_prometheus(data.decode())
        check(metric(samples, "ovms_replication_peer_up", peer="HTTPN1") == 1, "the peer link in /metrics")
        check(metric(samples, "ovms_redis_up") == 1, "Redis up in /metrics")
        check(metric(samples, "ovms_commands_total", outcome="forwarded") >= 3, "forwarded commands counted")
    finally:
        cl.stop()


def start_ovms_car(node, state_dir):
    log = open(os.path.join(state_dir, "car.log"), "w")
    proc = subprocess.Popen([OVMS_CAR, "--server", "127.0.0.1:%d" % node.port, "--vehicle", CAR, "--password", CAR_PW,
                             "--state-dir", state_dir, "--update-watched", "1"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        v = json.loads(node.request("GET", "/api/vehicles?" + creds())[1])[0]
        if v["v_net_connected"]:
            return proc, log
        time.sleep(0.1)
    raise AssertionError("ovms-car did not connect")


@test
def commands_to_ovms_car_here_and_across_nodes():
    cl = Cluster()
    d = tempfile.mkdtemp(prefix="ovms-http-car-")
    proc = None
    try:
        proc, log = start_ovms_car(cl.n1, d)
        for node, where in ((cl.n1, "same node"), (cl.n2, "across nodes")):
            deadline = time.time() + 10
            while time.time() < deadline:                # N2 learns where the car is
                v = json.loads(node.request("GET", "/api/vehicles?" + creds())[1])[0]
                if v["v_net_connected"]:
                    break
                time.sleep(0.1)
            r, data = node.request("PUT", "/api/charge/%s?%s&mode=range" % (CAR, creds()))
            check(r.status == 200 and json.loads(data)["result"] == 0, "%s: C10 range: %d %s" % (where, r.status, data))
            r, data = node.request("PUT", "/api/charge/%s?%s&current=300" % (CAR, creds()))
            check(r.status == 400, "%s: a bad current is refused before the car: %d" % (where, r.status))
            r, data = node.request("GET", "/api/features/%s?%s" % (CAR, creds()))
            f = json.loads(data)
            check(r.status == 200 and f["result"] == 0 and isinstance(f["features"], list) and f["max"] == len(f["features"]),
                  "%s: C1 features: %s" % (where, data[:200]))
            r, data = node.request("PUT", "/api/feature/%s?%s&feature=9&value=1" % (CAR, creds()))
            check(r.status == 200, "%s: C2: %d %s" % (where, r.status, data))
            r, data = node.request("GET", "/api/features/%s?%s" % (CAR, creds()))
            check(json.loads(data)["features"][9] == "1", "%s: the feature set: %s" % (where, data[:200]))
            r, data = node.request("PUT", "/api/lock/%s?%s" % (CAR, creds()))
            check(r.status in (200, 409), "%s: C20 (a PIN may be wanted): %d %s" % (where, r.status, data))
            r, data = node.request("PUT", "/api/homelink/%s?%s&button=1" % (CAR, creds()))
            check(r.status in (200, 501), "%s: C24: %d %s" % (where, r.status, data))
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        cl.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---- vehicle data -------------------------------------------------------------------------------

S_MSG = "S80.0,K,230,16,charging,standard,250,200,32,120,0,85,1,2,3,0,0,0,160.00,30,20,300,90,1,25,10,5,0,0,300,type2,7.2,400,95"
D_MSG = "D17,88,5,30,40,25,1234,56789,0,0,15,3,0,0,12.6,2,12.4,16,35,1.5,21"
L_MSG = "L51.5,-0.12,90,30,1,0,50,1234,2,10,5,3,4,95"
W_MSG = "W33.4,21,33.0,20,33.1,21,33.2,22,1"
Y_MSG = "Y4,fl,fr,rl,rr,4,230.0,231.5,229,228,1,4,21,22,20,19,1,0,-1,4,0,0,0,1,1"


def car_with_data(node, msgs):
    car = node.car()
    car.expect(lambda m: m.startswith("Z"), desc="Z")
    for m in msgs:
        car.send(m)
    car.send("A")
    car.expect("a", desc="the ping's answer: everything before it was handled")
    return car


@test
def status_charge_location(node):
    car = car_with_data(node, [S_MSG, D_MSG, L_MSG])
    r, data = node.request("GET", "/api/status/%s?%s" % (CAR.lower(), creds()))
    check(r.status == 200, "status: %d %s" % (r.status, data))
    s = json_body(r, data)
    check(s["soc"] == "80.0" and s["units"] == "K" and s["chargestate"] == "charging", "S fields as strings: %s" % s)
    check(s["cac100"] == "160.00" and s["soh"] == "95" and s["idealrange_max"] == "300", "S#19, S#34, S#30")
    check(s["charging"] == 16 and s["fl_dooropen"] == 1 and s["pilotpresent"] == 0 and s["caron"] == 0,
          "D#1 bits as masked values: %s" % {k: s[k] for k in ("charging", "fl_dooropen", "pilotpresent", "caron")})
    check(s["carlocked"] == 8 and s["valetmode"] == 16 and s["bt_open"] == 64, "D#2 bits (88 = 0x58)")
    check(s["carawake"] == 1 and s["alarmsounding"] == 2 and s["charging_12v"] == 16, "F3/F4 fixed, D#18")
    check(s["vehicle12v"] == "12.6" and s["temperature_cabin"] == "21" and s["odometer"] == "56789", "D strings")
    check(isinstance(s["m_msgage_s"], int) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", s["m_msgtime_s"]),
          "times: %s %s" % (s["m_msgage_s"], s["m_msgtime_s"]))
    check(list(json.loads(data, object_pairs_hook=lambda p: [k for k, _ in p])) ==
          sorted(json.loads(data, object_pairs_hook=lambda p: [k for k, _ in p])), "keys sorted")
    r, data = node.request("GET", "/api/charge/%s?%s" % (CAR, creds()))
    c = json_body(r, data)
    check(c["linevoltage"] == "230" and c["chargecurrent"] == "16" and c["chargepower"] == "7.2", "charge S fields")
    check(c["batt_capacity"] is None and c["chargepowerinput"] is None, "fields past the end are null")
    check("chargesubstate" in c and "fl_dooropen" not in c, "charge keys only")
    r, data = node.request("GET", "/api/location/%s?%s" % (CAR, creds()))
    loc = json_body(r, data)
    check(loc["latitude"] == "51.5" and loc["longitude"] == "-0.12" and loc["invefficiency"] == "95", "location: %s" % loc)
    car.close()


@test
def tpms_w_and_y(node):
    car = car_with_data(node, [W_MSG])
    r, data = node.request("GET", "/api/tpms/%s?%s" % (CAR, creds()))
    t = json_body(r, data)
    check(t["fr_pressure"] == "33.4" and t["rl_temperature"] == "22" and t["staletpms"] == "1", "W: %s" % t)
    car.send(Y_MSG)
    car.send("A")
    car.expect("a")
    r, data = node.request("GET", "/api/tpms/%s?%s" % (CAR, creds()))
    check(r.status == 200, "a stored Y is not a 404 (F1 fixed): %d" % r.status)
    t = json_body(r, data)
    check(t["fl_pressure_kpa"] == "230.0" and abs(t["fl_pressure"] - 33.3586796779481) < 1e-9, "Y pressure: %s" % t)
    check(b'"fl_pressure":33.3586796779481' in data, "psi with 15 significant digits: %s" % data)
    check(t["fr_temperature"] == "22" and t["rr_temperature"] == "19", "temperatures: %s" % t)
    check("rr_health" not in t and t["rr_alert"] == "1", "an empty health section adds no keys; alerts")
    check(t["stale_pressure"] == "1" and t["stale_health"] == "-1" and t["staletpms"] == 1, "validity: %s" % t)
    check(t["m_msgtime_w"] == t["m_msgtime_y"], "m_msgtime_w repeats the Y's")
    car.close()


@test
def protocol(node):
    car = car_with_data(node, [S_MSG, "F3.3.004,VIN123,20,0,VWUP,Vodafone", D_MSG])
    r, data = node.request("GET", "/api/protocol/%s?%s" % (CAR, creds()))
    p = json_body(r, data)
    codes = [m["m_code"] for m in p]
    check(codes[:2] == ["F", "S"] and codes[2:] == sorted(codes[2:]), "F, S, then by code: %s" % codes)
    check(p[0]["m_msg"] == "3.3.004,VIN123,20,0,VWUP,Vodafone" and p[0]["m_paranoid"] == "0" and p[0]["m_ptoken"] == "",
          "an entry: %s" % p[0])
    car.close()


@test
def historical(node):
    car = node.car()
    car.expect(lambda m: m.startswith("Z"), desc="Z")
    for seq, off, recno, data in ((1, -300, 1, "1,2,3,with,commas"), (2, -200, 2, "second"), (3, -100, 3, "third")):
        car.send("h%d,%d,*-LOG-Test,%d,3600,%s" % (seq, off, recno, data))
        car.expect_next("h%d" % seq)
    r, data = node.request("GET", "/api/historical/%s?%s" % (CAR, creds()))
    summary = [t for t in json_body(r, data) if t["h_recordtype"] == "*-LOG-Test"]
    check(len(summary) == 1, "one summary line for the type: %s" % data)
    t = summary[0]
    check(t["distinctrecs"] == "3" and t["totalrecs"] == "3" and isinstance(t["totalsize"], str), "counts as strings: %s" % t)
    r, data = node.request("GET", "/api/historical/%s/%s?%s" % (CAR, "%2A-LOG-Test", creds()))
    recs = json_body(r, data)
    check([x["h_data"] for x in recs] == ["1,2,3,with,commas", "second", "third"], "records in order: %s" % recs)
    check(recs[0]["h_recordnumber"] == "1" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", recs[0]["h_timestamp"]),
          "record fields: %s" % recs[0])
    r, data = node.request("GET", "/api/historical/%s/*-LOG-Test?%s&limit=2" % (CAR, creds()))
    check(len(json.loads(data)) == 2 and r.getheader("X-OVMS-Truncated") == "1", "limit cuts, and says so")
    r, data = node.request("GET", "/api/historical/%s/*-LOG-Test?%s&since=%s" % (CAR, creds(), recs[1]["h_timestamp"].replace(" ", "%20")))
    check([x["h_data"] for x in json.loads(data)] == ["third"], "since is strictly later: %s" % data)
    r, data = node.request("GET", "/api/historical/%s?%s&since=garbage" % (CAR, creds()))
    check(r.status == 400 and data == b"Invalid since\n", "a bad since is 400: %d %s" % (r.status, data))
    r, data = node.request("GET", "/api/historical/%s/NoSuchType?%s" % (CAR, creds()))
    check(json.loads(data) == [], "an unknown type: []")
    car.close()


@test
def ownership(node):
    for path in ("/api/status/%s" % CAR2, "/api/protocol/%s" % CAR2, "/api/historical/%s" % CAR2, "/api/status/NOSUCHCAR", "/api/charge/",
                 "/api/tpms/%s" % CAR2.lower(), "/api/location/%s" % CAR2):
        r, data = node.request("GET", path + "?" + creds())
        check(r.status == 403 and data == b"Forbidden\n", "%s: 403 Forbidden, got %d %s" % (path, r.status, data))
    r, data = node.request("GET", "/api/status/%s?%s" % (CAR2, creds(OTHER, OTHER_PW)))
    check(r.status == 200 and json.loads(data) == {}, "nothing stored: {} (%s)" % data)


def session(node, user=OWNER, pw=OWNER_PW):
    r, _ = node.request("GET", "/api/cookie?" + creds(user, pw))
    return {"Cookie": "ovmsapisession=" + re.search(r"ovmsapisession=([^;]+)", r.getheader("Set-Cookie")).group(1)}


@test
def http_sessions_are_app_connections(node):
    car = car_with_data(node, [S_MSG])
    car.collect(quiet=0.3)
    s1, s2 = session(node), session(node)
    r, data = node.request("GET", "/api/vehicle/%s" % CAR.lower(), headers=s1)
    v = json_body(r, data)
    check(v["v_net_connected"] == 1 and v["v_apps_connected"] == 1 and v["v_first_peer"] == 1, "first: %s" % v)
    check(isinstance(v["m_msgage_s"], int) and "m_msgtime_s" in v, "the S's time")
    car.expect("Z1", desc="the car hears the HTTP app")
    r, data = node.request("GET", "/api/vehicle/%s" % CAR, headers=s2)
    v = json.loads(data)
    check(v["v_apps_connected"] == 2 and v["v_first_peer"] == 0, "second: %s" % v)
    car.expect("Z2", desc="two")
    r, data = node.request("GET", "/api/vehicles", headers=s1)
    check(json.loads(data)[0]["v_apps_connected"] == 2, "counted in /api/vehicles")
    r, data = node.request("DELETE", "/api/vehicle/%s" % CAR, headers=s2)
    check(r.status == 200 and r.getheader("Content-Type") == "application/json" and data == b"Disconnect OK\n",
          "disconnect: %d %r" % (r.status, data))
    car.expect("Z1", desc="one left")
    node.request("DELETE", "/api/cookie", headers=s1)
    car.expect("Z0", desc="the session's logout removes its entry")
    r, data = node.request("GET", "/api/vehicle/%s" % CAR2, headers=s2)
    check(r.status == 403, "another owner's vehicle: 403")
    car.close()


@test
def an_entry_without_a_cookie_expires():
    node = Node("--timeout-api", "10")
    try:
        car = car_with_data(node, [])
        r, data = node.request("GET", "/api/vehicle/%s?%s" % (CAR, creds()))
        check(json.loads(data)["v_apps_connected"] == 1, "registered: %s" % data)
        car.expect("Z1", desc="the cookieless caller counts")
        car.expect("Z0", timeout=15, desc="and goes timeout_api after its last call")
        car.close()
    finally:
        node.stop()


@test
def vehicles_counts(node):
    car = node.car()
    car.expect(lambda m: m.startswith("Z"), desc="Z")
    app = ovmsclient.Connection("127.0.0.1", node.port, name="app")
    app.login("A", CAR, CAR_PW)
    r, data = node.request("GET", "/api/vehicles?" + creds())
    v = json.loads(data)
    check(v == [{"id": CAR, "v_apps_connected": 1, "v_btcs_connected": 0, "v_net_connected": 1}], "counts: %s" % v)
    car.close()
    app.close()


class Async:
    """An HTTP request in a thread: the car answers meanwhile."""

    def __init__(self, node, method, path, **kw):
        import threading
        self.result = None
        self.t = threading.Thread(target=self._run, args=(node, method, path, kw), daemon=True)
        self.t.start()

    def _run(self, node, method, path, kw):
        r, data = node.request(method, path, **kw)
        self.result = (r.status, r.reason, data)

    def get(self, timeout=15):
        self.t.join(timeout)
        check(self.result is not None, "the HTTP command was answered")
        return self.result


@test
def car_commands(node):
    car = node.car()
    car.expect(lambda m: m.startswith("Z"), desc="Z")
    q = creds()
    req = Async(node, "PUT", "/api/charge/%s?%s&mode=range" % (CAR, q))
    car.expect("C10,3", desc="the charge mode command")
    car.send("c10,0")
    status, reason, data = req.get()
    check(status == 200 and reason == "Ok", "charge mode: %d %s" % (status, data))
    check(json.loads(data) == {"command": 10, "response": ["10,0"], "result": 0, "text": ""}, "answer: %s" % data)
    req = Async(node, "PUT", "/api/charge/%s?%s" % (CAR, q), body="mode=standard&current=16",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    car.expect("C16,0,16", desc="mode and current from a form body")
    car.send("c16,1,charger busy, try later")
    status, reason, data = req.get()
    check(status == 409 and json.loads(data)["text"] == "charger busy, try later", "a failure is 409: %d %s" % (status, data))
    req = Async(node, "DELETE", "/api/lock/%s?%s&pin=1234" % (CAR, q))
    car.expect("C22,1234", desc="unlock with a PIN")
    car.send("c22,2")
    status, _, data = req.get()
    check(status == 501, "unsupported is 501: %d" % status)
    req = Async(node, "GET", "/api/features/%s?%s" % (CAR, q))
    car.expect("C1", desc="features")
    for k, v in enumerate(["a", "b,with comma", "c"]):
        car.send("c1,0,%d,3,%s" % (k, v))
    status, _, data = req.get()
    f = json.loads(data)
    check(status == 200 and f["features"] == ["a", "b,with comma", "c"] and f["max"] == 3 and len(f["response"]) == 3,
          "multi-line features: %s" % data)
    req = Async(node, "PUT", "/api/parameter/%s?%s&param=9&value=x,y" % (CAR, q))
    car.expect("C4,9,x,y", desc="the singular alias, a value with a comma")
    car.send("c4,0")
    check(req.get()[0] == 200, "parameter set")
    for path, name in (("/api/charge/%s?%s&current=300", "current"), ("/api/charge/%s?%s&mode=fast", "mode"),
                       ("/api/lock/%s?%s&pin=12a", "pin"), ("/api/feature/%s?%s&feature=40&value=1", "feature"),
                       ("/api/charge/%s?%s&mode=range&timermode=1", "timermode")):
        r, data = node.request("PUT" if "lock" not in path else "DELETE", path % (CAR, q))
        check(r.status == 400 and data == ("Invalid parameter: %s\n" % name).encode(), "%s: %d %s" % (path, r.status, data))
    r, data = node.request("PUT", "/api/charge/%s?%s" % (CAR2, q))
    check(r.status == 403, "another owner's car: 403")
    # the car goes while a command waits; a reset is then "rebooting"
    req = Async(node, "PUT", "/api/homelink/%s?%s&button=1" % (CAR, q))
    car.expect("C24,1", desc="homelink")
    req5 = Async(node, "PUT", "/api/reset/%s?%s" % (CAR, q))
    car.expect("C5", desc="reset")
    car.close()
    status, _, data = req.get()
    check(status == 503 and json.loads(data)["text"] == "vehicle disconnected", "car gone: %d %s" % (status, data))
    status, _, data = req5.get()
    check(status == 202 and json.loads(data)["result"] is None, "reset then gone: 202 %s" % data)
    time.sleep(0.3)
    r, data = node.request("PUT", "/api/charge/%s?%s" % (CAR, q))
    check(r.status == 503 and json.loads(data) == {"command": 11, "result": 1, "text": "vehicle not connected"},
          "offline: %d %s" % (r.status, data))


@test
def post_api_command(node):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    car = node.car()
    car.send("h9,0,*-LOG-Cmd,1,86400,a,b")
    car.expect(lambda m: m.startswith("h"), timeout=5)
    # 30-32: the server answers (also with the car offline)
    car.close()
    time.sleep(0.3)
    r, data = node.request("POST", "/api/command/%s?%s" % (CAR, creds()), body="command=32,*-LOG-Cmd", headers=form)
    o = json.loads(data)
    check(r.status == 200 and o["command"] == 32 and o["result"] == 0 and o["response"][0].startswith("32,0,1,1,*-LOG-Cmd,")
          and o["response"][0].endswith(",1,a,b"), "C32 by the server: %d %s" % (r.status, data))
    r, data = node.request("POST", "/api/command/%s?%s" % (CAR, creds()), body="command=31", headers=form)
    check(r.status == 200 and any(x.startswith("31,0,") and ",*-LOG-Cmd," in x for x in json.loads(data)["response"]),
          "C31: %s" % data)
    r, data = node.request("POST", "/api/command/%s?%s" % (CAR, creds()), body="command=32,*-LOG-None", headers=form)
    check(r.status == 409 and json.loads(data)["text"] == "No historical data available", "none: %d %s" % (r.status, data))
    r, data = node.request("POST", "/api/command/%s?%s&command=7,x" % (CAR, creds()))
    check(r.status == 503 and json.loads(data)["text"] == "vehicle not connected", "to the car, offline: %s" % data)
    # any other command goes to the car like the others
    car = node.car()
    req = Async(node, "POST", "/api/command/%s?%s" % (CAR, creds()), body="command=7,say hello, world", headers=form)
    got = car.expect(lambda m: m.startswith("C7"), timeout=5)
    check(got == "C7,say hello, world", "the line as given: %s" % got)
    car.send("c7,0,said")
    status, _, data = req.get()
    check(status == 200 and json.loads(data)["text"] == "said", "its reply: %d %s" % (status, data))
    for bad_cmd in ("abc", "7x", "", "1234"):
        r, data = node.request("POST", "/api/command/%s?%s" % (CAR, creds()), body="command=" + bad_cmd, headers=form)
        check(r.status == 400 and data == b"Invalid parameter: command\n", "%r: 400: %d" % (bad_cmd, r.status))
    car.close()


@test
def a_command_without_answer_times_out():
    node = Node("--command-timeout", "2")
    try:
        car = car_with_data(node, [])
        req = Async(node, "PUT", "/api/charge/%s?%s" % (CAR, creds()))
        car.expect("C11", desc="start charge")
        status, reason, data = req.get(10)
        check(status == 504 and json.loads(data) == {"command": 11, "result": None, "text": "no response from vehicle"},
              "504: %d %s" % (status, data))
        car.send("c11,0")                # late: dropped; the next command gets its own reply
        req = Async(node, "DELETE", "/api/charge/%s?%s" % (CAR, creds()))
        car.expect("C12", desc="stop charge")
        car.send("c12,0")
        status, _, data = req.get()
        check(status == 200 and json.loads(data)["command"] == 12, "the next reply reaches its own requester: %s" % data)
        car.close()
    finally:
        node.stop()


@test
def https():
    d = tempfile.mkdtemp(prefix="ovms-http-cert-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", d + "/key.pem", "-out", d + "/cert.pem"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port, v2tls = free_port(), free_port()
    node = Node("--https", "127.0.0.1:%d" % port, "--tls-cert", d + "/cert.pem", "--tls-key", d + "/key.pem",
                "--tls-listen", "127.0.0.1:%d" % v2tls)
    try:
        import ssl
        ctx = ssl.create_default_context(cafile=d + "/cert.pem")
        ctx.check_hostname = False
        # WebSocket /apiv2 inside TLS (the 6870 listener): upgrade, scheme 1, a server command
        ws = WS(v2tls, tls=ctx)
        check(ws.handshake().startswith("HTTP/1.1 101"), "WebSocket upgrade over TLS")
        ws.send("MP-A 1 %s %s %s" % (OWNER, OWNER_PW, CAR))
        check(ws.text().startswith("MP-S 1 "), "scheme 1 over TLS")
        ws.send("C30")
        check(ws.texts_until("c30")[-1].startswith("c30,"), "C30 over TLS")
        ws.close()
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        for _ in range(3):                               # keep-alive inside TLS
            c.request("GET", "/api/cookie?" + creds())
            r = c.getresponse()
            data = r.read()
            check(r.status == 200 and data == b"Login ok\n", "over TLS: %d %s" % (r.status, data))
            check(r.getheader("Set-Cookie").endswith("; Path=/; HttpOnly; Secure"), "Secure on HTTPS: %s"
                  % r.getheader("Set-Cookie"))
        c.close()
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")            # plain HTTP on the TLS port: closed
        s.settimeout(5)
        try:
            got = s.recv(100)
        except OSError:
            got = b""
        check(not got.startswith(b"HTTP/"), "no plain answer on the TLS port")
        s.close()

        # SIGHUP reloads a renewed certificate; connections made before keep working
        def subject_cn():
            raw = ssl.create_default_context()
            raw.check_hostname = False
            raw.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", port), 5) as so:
                with raw.wrap_socket(so) as t:
                    der = t.getpeercert(binary_form=True)
            out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                                 capture_output=True, check=True).stdout.decode()
            return out.strip()
        check("localhost" in subject_cn(), "the first certificate")
        old = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        old.request("GET", "/api/cookie?" + creds())
        old.getresponse().read()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=renewed.example", "-keyout", d + "/key.pem", "-out", d + "/cert.pem"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and "renewed.example" not in subject_cn():
            time.sleep(0.1)
        check("renewed.example" in subject_cn(), "the renewed certificate after SIGHUP")
        old.request("GET", "/api/cookie?" + creds())
        check(old.getresponse().status == 200, "a connection made before the reload still works")
        old.close()
        with open(d + "/cert.pem", "w") as f:
            f.write("not a certificate\n")
        node.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        check("renewed.example" in subject_cn(), "a bad file keeps the running certificate")
        check("TLS certificate not reloaded" in node.log_text(), "and says so")
        # the reference's key and default: one PEM, conf/ovms_server.pem (HTTP-API.md §13)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=localhost", "-keyout", d + "/k2.pem", "-out", d + "/c2.pem"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pem = open(d + "/c2.pem", "rb").read() + open(d + "/k2.pem", "rb").read()
        p2 = free_port()
        n2 = Node("--https", "127.0.0.1:%d" % p2, files={"conf/ovms_server.pem": pem})
        try:
            raw = ssl.create_default_context()
            raw.check_hostname = False
            raw.verify_mode = ssl.CERT_NONE
            c2 = http.client.HTTPSConnection("127.0.0.1", p2, timeout=10, context=raw)
            c2.request("GET", "/api/vehicles?" + creds())
            check(c2.getresponse().status == 200, "HTTPS with the default conf/ovms_server.pem")
            c2.close()
        finally:
            n2.stop()
    finally:
        node.stop()
        shutil.rmtree(d, ignore_errors=True)


@test
def mqapi():
    node = Node("--superuser", "broker")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        def post(path, body):
            return node.request("POST", path, body=body, headers=form)
        r, data = post("/mqapi/auth", creds())
        check(r.status == 200 and r.reason == "Authentication OK" and data == b"", "auth ok: %d %r" % (r.status, r.reason))
        r, data = post("/mqapi/auth", creds(pw="nope"))
        check(r.status == 403 and r.reason == "Authentication FAILED", "auth failed: %d" % r.status)
        r, data = node.request("POST", "/mqapi/auth?" + creds(), body="")
        check(r.status == 403, "URL parameters do not count for a POST")
        r, data = post("/mqapi/superuser", "username=")
        check(r.status == 404 and data == b"Username required\n", "no username: %d %r" % (r.status, data))
        r, _ = post("/mqapi/superuser", "username=owner1")
        check(r.status == 403 and r.reason == "Not a superuser", "not a superuser")
        r, _ = post("/mqapi/superuser/x", "username=broker")
        check(r.status == 200 and r.reason == "Is a superuser", "the superuser (sub-path too)")
        r, _ = post("/mqapi/acl", "username=broker&topic=anything")
        check(r.status == 200 and r.reason == "Superuser acl is permitted", "superuser acl")
        r, _ = post("/mqapi/acl", "username=owner1&topic=ovms%2Fowner1%2FTESTCAR%2Fx&acc=2")
        check(r.status == 200 and r.reason == "Access granted", "own topic: %d" % r.status)
        r, _ = post("/mqapi/acl", "username=owner1&topic=ovms/owner2/x")
        check(r.status == 403 and r.reason == "Access denied", "another's topic")
        r, data = node.request("GET", "/mqapi/auth")
        check(r.status == 404 and r.reason == "Unrecongised API call", "GET on a hook: %d" % r.status)
        js = {"Content-Type": "application/json"}
        r, _ = node.request("POST", "/mqapi/auth", body=json.dumps({"username": OWNER, "password": OWNER_PW}), headers=js)
        check(r.status == 200, "JSON body (an extension): %d" % r.status)
        r, _ = node.request("POST", "/mqapi/acl", body=json.dumps({"username": OWNER, "topic": "ovms/%s/x" % OWNER, "acc": 1}), headers=js)
        check(r.status == 200, "JSON acl: %d" % r.status)
        r, _ = node.request("POST", "/mqapi/auth", body='{"username": "owner1", "password": ', headers=js)
        check(r.status == 403, "invalid JSON: 403: %d" % r.status)
    finally:
        node.stop()


def main():
    passed = failed = 0
    shared = Node()
    try:
        for t in TESTS:
            if (ONLY and t.__name__ not in ONLY) or t.__name__ in SKIP:
                continue
            t0 = time.time()
            try:
                if t.__code__.co_argcount:
                    t(shared)
                else:
                    t()
                print("PASS %-32s %5.1f s" % (t.__name__, time.time() - t0), flush=True)
                passed += 1
            except Exception:
                print("FAIL %-32s %5.1f s" % (t.__name__, time.time() - t0), flush=True)
                traceback.print_exc()
                failed += 1
    finally:
        try:
            shared.stop()
        except Exception:
            traceback.print_exc()
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
