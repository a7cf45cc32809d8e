"""Terminates TLS in front of a plain-TCP collector, for the HTTPS export tests.

    python3 tls_proxy.py CERT KEY TARGET_PORT

Listens on a free port of 127.0.0.1, prints it on one line, then forwards
each connection's decrypted bytes to 127.0.0.1:TARGET_PORT and back until
killed. A handshake that fails (a client that does not trust CERT) closes
that connection only.
"""

import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(cert, key, target):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # gRPC's client asks for HTTP/2 by ALPN; an HTTP/1.1 client gets that.
    context.set_alpn_protocols(["h2", "http/1.1"])

    async def serve(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
