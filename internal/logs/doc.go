// Package logs is how corral keeps what its apps print: it reads each child's stdout and stderr
// line by line (Stream), appends the lines to log files it owns and rotates by size (Manager,
// File), and fans them out to live `corral logs` readers (Hub). Tail serves `corral logs
// --lines` from the files.
//
// The rule throughout is "nothing lost": no log line is silently dropped. A reader that is too
// slow is told how many lines it missed; a rotation that fails still writes the line to the file
// that is open; a write that fails is reported, and the gap is marked in the file once writing
// works again; what a file does not take (a full disk, a file that could not be opened) is
// counted per process and reported in the daemon log at a bounded rate (Loss). Slow readers never slow down or affect the files, and a child's pipe is always
// drained, so an app never blocks on its own output because of corral.
package logs
