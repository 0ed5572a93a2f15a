import socket, sys, time, re
port = int(sys.argv[1]); out = sys.argv[2]
s = socket.create_connection(('127.0.0.1', port))
buf = b''
def read_resp():
    global buf
    while True:
        i = buf.find(b'\r\n\r\n')
        if i >= 0:
            head = buf[:i+4]
            m = re.search(rb'Content-Length:\s*(\d+)', head, re.I)
            n = int(m.group(1)) if m else 0
            while len(buf) < i+4+n: buf += s.recv(65536)
            msg = buf[:i+4+n]; buf = buf[i+4+n:]
            return msg
        buf += s.recv(65536)
url = 'rtsp://127.0.0.1:%d/test' % port
cseq = 0
def req(method, u, extra=''):
    global cseq
    cseq += 1
    r = '%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: camgate/0.1.0\r\n%s\r\n' % (method, u, cseq, extra)
    s.sendall(r.encode())
    return read_resp()
r1 = req('OPTIONS', url); open(out+'/gst_options.txt','wb').write(r1)
r2 = req('DESCRIBE', url, 'Accept: application/sdp\r\n'); open(out+'/gst_describe.txt','wb').write(r2)
m = re.search(rb'a=control:(\S+)', r2.split(b'm=video')[1])
ctrl = 'rtsp://127.0.0.1:%d/test/' % port + m.group(1).decode()
r3 = req('SETUP', ctrl, 'Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n'); open(out+'/gst_setup.txt','wb').write(r3)
sess = re.search(rb'Session:\s*([^;\r]+)', r3).group(1).decode()
r4 = req('PLAY', url + '/', 'Session: %s\r\nRange: npt=0.000-\r\n' % sess); open(out+'/gst_play.txt','wb').write(r4)
t = time.time(); data = buf
while len(data) < 3000 and time.time()-t < 5: data += s.recv(65536)
open(out+'/gst_after_play.bin','wb').write(data)
r5 = b''
cseq += 1
s.sendall(('GET_PARAMETER %s RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n\r\n' % (url+'/', cseq, sess)).encode())
time.sleep(0.5)
s.sendall(('TEARDOWN %s RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n\r\n' % (url+'/', cseq+1, sess)).encode())
time.sleep(0.5)
s.settimeout(1)
try:
    while True:
        d = s.recv(65536)
        if not d: break
        data += d
except Exception: pass
open(out+'/gst_tail.bin','wb').write(data)
print("done", ctrl)
