// Imported first by the CLI: a bigger libuv threadpool (file I/O of many container starts at once), set before the pool starts.
process.env.UV_THREADPOOL_SIZE ??= '16';
export {};
