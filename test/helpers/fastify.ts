/** What Fastify's serializer writes for a value by a response schema: the bytes a client receives. */
import Fastify from 'fastify';

export async function writtenBy(schema: Record<string, unknown>, value: unknown): Promise<string> {
  const app = Fastify();
  app.get('/', { schema: { response: { 200: schema } } }, async () => value);
  try {
    return (await app.inject({ method: 'GET', url: '/' })).body;
  } finally {
    await app.close();
  }
}
