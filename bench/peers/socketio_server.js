// Peer (c): Node's socket.io server: the same relay as the drag demo.
// syncPosition(position, ack): broadcast updatePosition to every other client, ack(true).
// No validation or limits. WebSocket transport only, no compression.
//
//   node bench/peers/socketio_server.js --port 8003
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

const portIndex = process.argv.indexOf('--port');
const port = portIndex > 0 ? Number(process.argv[portIndex + 1]) : 8003;

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  serveClient: false,
  maxHttpBufferSize: 65536,
});

io.on('connection', (socket) => {
  socket.on('syncPosition', (position, ack) => {
    socket.broadcast.emit('updatePosition', position);
    if (typeof ack === 'function') ack(true);
  });
});

httpServer.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
