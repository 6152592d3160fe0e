// Starts Swagger UI on the document named by #swagger-ui's data-url. A file of its own, not an inline script: the
// page's Content-Security-Policy runs only this origin's files.
"use strict";

// Swagger UI sends every optional form field it shows, empty ones too, unless "Send empty value" is unticked; this
// plugin makes unticked the default, so only the fields filled in are sent.
const OnlyFilledFields = () => ({
  wrapComponents: {
    ParameterIncludeEmpty: (Original, system) => (props) => system.React.createElement(Original, {
      ...props, isIncludedOptions: {...props.isIncludedOptions, defaultValue: false},
    }),
  },
});

window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.url,
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  // No badge from validator.swagger.io: it would send this API's document URL to another site.
  validatorUrl: null,
  plugins: [OnlyFilledFields],
});
