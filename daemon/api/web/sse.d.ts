/** Types of sse.js, which stays plain JavaScript so the dashboard loads it without a build step. */

/** Called with an event's name ('message' when the stream names none) and its data lines joined with LF. */
export type SseHandler = (event: string, data: string) => void;

/** Splits a server-sent event stream into events; feed the returned function the stream's chunks in order. */
export declare function sseParser(onEvent: SseHandler): (chunk: string) => void;
