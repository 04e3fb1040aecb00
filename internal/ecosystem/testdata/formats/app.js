// A stand-in app for the ecosystem files in this directory; it is never run.
console.log("hello");
