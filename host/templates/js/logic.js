// {{name}}'s decision logic: plain JavaScript, tested natively
// (`node --test` in this folder); plugin.js is the component glue.

/** What to answer `body` with, if anything. */
export function answer(body, reply) {
  return body.trim().toLowerCase() === 'ping' ? reply : null;
}
