const _ = require('lodash');
module.exports = { apps: [] };
