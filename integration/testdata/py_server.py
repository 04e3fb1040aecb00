# A Python HTTP server that takes its listening socket from the process manager (systemd's
# socket activation protocol: fd 3, LISTEN_FDS, LISTEN_PID) instead of binding a port. On SIGINT
# it stops accepting and finishes the request it is serving. With SD_NOTIFY=1 it says READY=1.
# By default it speaks HTTP/1.0 (one request per connection) and answers GET. With
# KEEP_ALIVE=1 it speaks HTTP/1.1, keeps connections open between requests, serves each in a
# thread of its own and answers POST too: a keep-alive load sends POST, which clients do not
# retry, so that every connection the server loses shows.
import http.server, json, os, signal, socket, sys, threading

keep_alive = os.environ.get("KEEP_ALIVE") == "1"

class Handler(http.server.BaseHTTPRequestHandler):
    if keep_alive:
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold the body back on a kept-alive connection.
        disable_nagle_algorithm = True

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        body = json.dumps({"pid": os.getpid(), "instance": os.environ.get("NODE_APP_INSTANCE")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = answer
    if keep_alive:
        do_POST = answer

    def log_message(self, *args):
        pass

if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
    sys.exit("no socket passed: LISTEN_PID=%s LISTEN_FDS=%s" % (os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")))
server_class = http.server.ThreadingHTTPServer if keep_alive else http.server.HTTPServer
server = server_class(("", 0), Handler, bind_and_activate=False)
server.socket = socket.socket(fileno=3)

def stop(*_):
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("serving on fd 3 (%s)" % os.environ.get("LISTEN_FDNAMES"), flush=True)
if os.environ.get("SD_NOTIFY") == "1" and os.environ.get("NOTIFY_SOCKET"):
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    n.close()
server.serve_forever(poll_interval=0.1)
