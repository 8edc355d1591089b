// Starts the chat service.
//   APP_DATABASE_URL  postgresql://app_user@localhost/chat (never the migrator, never a superuser)
//   SESSION_SECRET    the key that signs session tokens
//   PORT              default 3000; 0 picks a free one
import { Pool } from 'pg';
import { createApp } from './app';

const url = process.env.APP_DATABASE_URL;
const secret = process.env.SESSION_SECRET;
if (!url || !secret) {
	console.error('set APP_DATABASE_URL and SESSION_SECRET');
	process.exit(2);
}
const pool = new Pool({ connectionString: url, max: 5 });
const server = createApp(pool, secret);
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
	const address = server.address();
	console.log(`chat listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : ''}`);
});
process.on('SIGTERM', () => server.close(() => pool.end()));
