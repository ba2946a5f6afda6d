//! minijinja templates for computed fields: the environment every template runs in, and the
//! check `etl validate` makes before any data moves.

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

/// A template that cannot be used, with the line inside the template when known.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// 1-based line inside the template text.
    pub line: Option<usize>,
    pub message: String,
}

/// The environment templates are compiled in. Undefined values render as empty, since source
/// records often lack optional fields.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
}

/// Compiles `source` and renders it once against an empty record, so that syntax errors and
/// unknown filters, tests or functions are found offline. Errors that depend on the data (a
/// value of the wrong type, say) cannot be judged without data and are not reported.
pub fn check(source: &str) -> Result<(), TemplateError> {
    let env = environment();
    let template = env.template_from_str(source).map_err(to_error)?;
    let context = minijinja::context! { value => Value::from(()), record => Value::from(std::collections::BTreeMap::<String, Value>::new()) };
    match template.render(context) {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownTest
                    | ErrorKind::SyntaxError
            ) =>
        {
            Err(to_error(error))
        }
        Err(_) => Ok(()),
    }
}

fn to_error(error: minijinja::Error) -> TemplateError {
    let message = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    TemplateError {
        line: error.line(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_syntax_errors_with_their_line() {
        let err = check("first line\n{{ value | upper }\n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn reports_unknown_filters() {
        let err = check("{{ value | shout }}").unwrap_err();
        assert!(err.message.contains("unknown filter"), "{}", err.message);
    }

    #[test]
    fn accepts_good_templates() {
        check("{{ record.Name | default('none') | trim }}").unwrap();
    }
}
