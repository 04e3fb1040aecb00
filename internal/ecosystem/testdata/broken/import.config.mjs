import path from 'path';

export default { apps: [{ script: path.join('a', 'app.js') }] };
