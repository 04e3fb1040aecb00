# A Python HTTP/1.1 server that, like py_server.py, takes its listening socket from the process
# manager (systemd's socket activation protocol: fd 3, LISTEN_FDS, LISTEN_PID), but keeps
# connections open between requests, serves each connection in a thread of its own, and answers
# POST as well as GET: a load with keep-alive connections sends POST, which clients do not retry,
# so that every connection the server loses shows. py_server.py speaks HTTP/1.0 (one request per
# connection) and answers GET only. On SIGINT or SIGTERM it stops accepting.
import http.server, json, os, signal, socket, sys, threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm and the client's
    # delayed ACK hold the body back on a kept-alive connection.
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
    do_POST = answer

    def log_message(self, *args):
        pass


if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
    sys.exit("no socket passed: LISTEN_PID=%s LISTEN_FDS=%s" % (os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")))
server = http.server.ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
server.socket = socket.socket(fileno=3)


def stop(*_):
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("serving HTTP/1.1 on fd 3 (%s)" % os.environ.get("LISTEN_FDNAMES"), flush=True)
server.serve_forever(poll_interval=0.1)
