#!/usr/bin/env python3
"""Writes the hand-made seeds of the web side's fuzz targets (testkit/src/fuzz/web.rs) into
fuzz/seeds/{http_request,websocket,rest_body}/: real browser and Flashphoner Web SDK requests,
Flashphoner WCS REST bodies, a WHEP offer, and a few hostile ones. Run from anywhere."""
import json, os, struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

def write(target, name, data):
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data)

# A Chromium offer as the SDK sends it (no candidates, audio first, recvonly).
OFFER = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Yb3F\r\na=ice-pwd:7Rk0Z8cXkH2xq1mJb1m0qk5Q\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 5B:1E:5C:8B:0F:1A:27:9A:43:64:3E:2D:43:B2:C1:33:55:8C:55:1D:6E:7B:2C:96:0F:45:84:0C:9C:6C:2B:8D\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Yb3F\r\na=ice-pwd:7Rk0Z8cXkH2xq1mJb1m0qk5Q\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 5B:1E:5C:8B:0F:1A:27:9A:43:64:3E:2D:43:B2:C1:33:55:8C:55:1D:6E:7B:2C:96:0F:45:84:0C:9C:6C:2B:8D\r\n"
    "a=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
    "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n"
    "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack pli\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
)

UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: Upgrade\r\nPragma: no-cache\r\n"
    "Cache-Control: no-cache\r\nUpgrade: websocket\r\nOrigin: http://127.0.0.1:8081\r\n"
    "Sec-WebSocket-Version: 13\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)

CONNECTION = {"message": "connection", "data": [{
    "appKey": "defaultApp", "mediaProviders": ["WebRTC", "MSE", "WSPlayer"],
    "clientVersion": "2.0", "clientOSVersion": "5.0 (X11)",
    "clientBrowserVersion": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0",
    "msePacketizationVersion": 2, "clientInfo": {}}]}
MSID = "8d0bc4a0-8f3e-11ee-b9d1-0242ac120002"
PLAY = {"message": "playStream", "data": [{
    "mediaSessionId": MSID, "name": "rtsp://192.168.1.64:554/Streaming/Channels/101",
    "published": False, "hasVideo": True, "hasAudio": True, "status": "PENDING",
    "record": False, "width": 0, "height": 0, "mediaProvider": "WebRTC", "sdp": OFFER,
    "bitrate": 0, "minBitrate": 0, "maxBitrate": 0, "quality": 0}]}
STOP = {"message": "stopStream", "data": [{
    "mediaSessionId": MSID, "name": "rtsp://192.168.1.64:554/Streaming/Channels/101",
    "published": False, "hasVideo": True, "hasAudio": True, "status": "PLAYING",
    "record": False}]}
PONG = {"message": "pong", "data": [None]}

def client_frame(opcode, payload, fin=True, key=b"\x37\xfa\x21\x3d"):
    b = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        b.append(0x80 | n)
    elif n < 65536:
        b.append(0x80 | 126); b += struct.pack(">H", n)
    else:
        b.append(0x80 | 127); b += struct.pack(">Q", n)
    b += key
    b += bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return bytes(b)

def js(v):
    return json.dumps(v, separators=(",", ":")).encode()

# ---- http_request: flags (bit 0 signaling port, 1 slow clock, 2 flood, 3 auth_token,
# 4 cameras fail), two split points, bytes.
H = "http_request"
write(H, "get-index", bytes([0, 90, 128]) + b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"
      b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0\r\nAccept: text/html\r\n"
      b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
write(H, "get-js-pipelined", bytes([0, 40, 200]) + b"GET /camgate.js HTTP/1.1\r\nHost: h\r\n\r\n"
      b"GET /player.css HTTP/1.1\r\nHost: h\r\n\r\n")
write(H, "upgrade-then-connection", bytes([1, 200, 250]) + UPGRADE.encode()
      + client_frame(1, js(CONNECTION)))
write(H, "upgrade-no-key", bytes([1, 128, 128]) + b"GET / HTTP/1.1\r\nHost: h\r\n"
      b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
write(H, "whep-offer", bytes([0, 30, 60]) + b"POST /whep/lobby HTTP/1.1\r\nHost: h\r\n"
      b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(OFFER) + OFFER.encode())
write(H, "whep-offer-cameras-fail", bytes([16, 30, 60]) + b"POST /whep/rtsp%3A%2F%2Fadmin%3Asecretpw%40127.0.0.1%2Fcam HTTP/1.1\r\nHost: h\r\n"
      + b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(OFFER) + OFFER.encode())
write(H, "slow-head", bytes([2, 100, 200]) + b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nUser-Agent: slowloris\r\n")
write(H, "flood-body", bytes([4, 128, 128]) + b"POST /rest-api/rtsp/startup HTTP/1.1\r\nHost: h\r\n"
      b"Content-Length: 65536\r\n\r\n{\"uri\":\"")
write(H, "flood-head", bytes([4, 10, 20]) + b"GET / HTTP/1.1\r\nX-Padding: " + b"a" * 200)
write(H, "huge-content-length", bytes([0, 128, 128]) + b"POST /whep/lobby HTTP/1.1\r\n"
      b"Content-Type: application/sdp\r\nContent-Length: 99999999999999999999\r\n\r\n")
write(H, "body-too-large", bytes([0, 128, 128]) + b"POST /whep/lobby HTTP/1.1\r\n"
      b"Content-Type: application/sdp\r\nContent-Length: 70000\r\n\r\nv=0\r\n")
write(H, "tls-hello-on-plain", bytes([0, 3, 3]) + bytes.fromhex(
      "160301020001 0001fc0303".replace(" ", "")) + bytes(range(32)))
write(H, "options-preflight", bytes([8, 128, 128]) + b"OPTIONS /whep/lobby HTTP/1.1\r\nHost: h\r\n"
      b"Origin: https://player.example\r\nAccess-Control-Request-Method: POST\r\n"
      b"Access-Control-Request-Headers: authorization,content-type\r\n\r\n")
write(H, "metrics-bearer", bytes([8, 128, 128]) + b"GET /metrics HTTP/1.1\r\nHost: h\r\n"
      b"Authorization: Bearer t0k\r\n\r\n")
write(H, "lf-only", bytes([0, 128, 128]) + b"GET /api/streams HTTP/1.1\nHost: h\n\n")
write(H, "http10-bare", bytes([0, 128, 128]) + b"GET /index.html HTTP/1.0\r\n\r\n")

# ---- websocket: flags (bit 0 auth_token, 1 allowed_hosts, 2 cameras fail, 3 long clock
# steps), then records op, [declared u32 if op bit 6], len u16 LE, payload.
W = "websocket"

def rec(op, payload, declared=None):
    b = bytes([op])
    if declared is not None:
        b += struct.pack(">I", declared)
    return b + struct.pack("<H", len(payload)) + payload

def tmpl(sel, x=b"", drive=False):
    return rec(0x06 | (0x80 if drive else 0), bytes([sel]) + x)

TEXT, DRIVE = 0x01, 0x80
write(W, "sdk-session", bytes([0]) + rec(TEXT, js(CONNECTION)) + rec(TEXT | DRIVE, js(PLAY))
      + rec(TEXT, js(PONG)) + rec(TEXT | DRIVE, js(STOP)) + rec(0x03, b"\x03\xe8"))
write(W, "template-session", bytes([4]) + tmpl(0) + tmpl(1, b"Streaming/Channels/101", True)
      + tmpl(4) + tmpl(3, b"x", True) + tmpl(5, b"getVersion"))
write(W, "auth-token-lobby", bytes([1]) + tmpl(0, b"t0k") + tmpl(6, b"m1", True)
      + tmpl(3) + rec(0x03, b"\x03\xe9bye"))
write(W, "auth-wrong-token", bytes([1]) + tmpl(0, b"nope") + tmpl(1, b"cam"))
write(W, "auth-play-first", bytes([1]) + tmpl(1, b"cam") + tmpl(0, b"t0k"))
write(W, "restricted-host", bytes([2]) + tmpl(0) + tmpl(7, b"cam", True) + tmpl(1, b"ok", True))
write(W, "too-big-frame", bytes([0]) + tmpl(0) + rec(0x41, b"{\"message\":", declared=1 << 20))
write(W, "fragments", bytes([0]) + rec(0x09, b'{"message":"connec') + rec(0x08, b'tion","data":')
      + rec(0x00, b'[{}]}') + rec(0x04, b"ping"))
write(W, "unmasked", bytes([0]) + tmpl(0) + rec(0x11, js(PONG)))
write(W, "binary-and-pings", bytes([8]) + rec(0x02, bytes(range(64))) + rec(0x84, b"")
      + rec(0x05, b"p") + rec(0x80 | 0x06, b"\x04"))
write(W, "play-without-data", bytes([0]) + tmpl(0) + rec(TEXT, b'{"message":"playStream","data":[]}')
      + rec(TEXT, b'{"message":"playStream"}'))
write(W, "bad-json", bytes([0]) + rec(0x01, b'{"message":"playStream","data":[{"name":'))
write(W, "escaped-name", bytes([0]) + tmpl(0) + tmpl(0x82, b"rtsp://u:p\"w@h/\\x"))

# ---- rest_body: flags (bit 0 auth_token, 1 allowed_hosts, 2 cameras fail), then records
# sel (path | method << 4), hdr (1 token, 2 wrong token, 4 sdp type, 8/16/24 body template,
# 32 time passes), len u16 LE, text.
R = "rest_body"
POST, GET, DELETE, PATCH, OPTIONS = 0, 1, 2, 3, 4

def req(path, method, hdr, text=b""):
    return bytes([path | method << 4, hdr]) + struct.pack("<H", len(text)) + text

URL_T, STR_T, SDP_T = 8, 16, 24
write(R, "wcs-startup-find-terminate", bytes([0])
      + req(0, POST, URL_T, b"127.0.0.1:554/Streaming/Channels/101")
      + req(0, POST, URL_T, b"127.0.0.1:554/Streaming/Channels/101")
      + req(1, GET, 0) + req(2, POST, URL_T | 32, b"127.0.0.1:554/Streaming/Channels/101")
      + req(4, GET, 0) + req(8, GET, 0)
      + req(3, POST, STR_T, b"rtsp://admin:***@127.0.0.1:554/Streaming/Channels/101")
      + req(1, POST, 0))
write(R, "named-stream", bytes([4]) + req(0, POST, STR_T, b"lobby") + req(13, GET, 32)
      + req(4, GET, 0) + req(3, POST, STR_T, b"lobby"))
write(R, "raw-bodies", bytes([0]) + req(0, POST, 0, b'{"uri":""}') + req(0, POST, 0, b"{uri:")
      + req(0, POST, 0, b"[]") + req(3, POST, 0, b'{"uri":42}') + req(0, POST, 0)
      + req(9, POST, 0, b'{"uri":"rtsp://cam.local/live"}'))
write(R, "auth", bytes([1]) + req(0, POST, STR_T, b"lobby") + req(0, POST, STR_T | 1, b"lobby")
      + req(1, GET, 2) + req(4, GET, 1) + req(5, POST, SDP_T | 4) + req(0, OPTIONS, 0)
      + req(10, GET, 0))
write(R, "restricted", bytes([2]) + req(0, POST, URL_T, b"203.0.113.9/cam")
      + req(0, POST, URL_T, b"10.1.2.3/cam") + req(14, POST, SDP_T | 4))
write(R, "whep", bytes([0]) + req(5, POST, SDP_T | 4 | 32) + req(7, DELETE, 0)
      + req(6, POST, SDP_T | 4) + req(5, POST, SDP_T) + req(12, POST, SDP_T | 4)
      + req(7, PATCH, 0, b"a=candidate:1 1 udp 1 192.0.2.1 5000 typ host") + req(5, GET, 0))
write(R, "whep-cameras-fail", bytes([4]) + req(6, POST, SDP_T | 4 | 32) + req(7, DELETE, 32)
      + req(15, GET, 0) + req(11, POST, 0))
write(R, "bad-uris", bytes([0]) + req(0, POST, STR_T, b"http://example.com/x")
      + req(0, POST, STR_T, b"rtsp://") + req(0, POST, STR_T, b"rtsp://[::1/x")
      + req(0, POST, URL_T, b"h:99999/x") + req(0, POST, STR_T, b"lobby\u0000"))
