// After helpers.js. arguments: maxElements, scale.
return observePage(arguments[0], arguments[1]);
