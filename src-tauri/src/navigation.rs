//! Where the sign-in window may go. It shows the platform's sign-in pages and nothing else:
//! the loopback redirect with the code is intercepted (the code stays in the app); frames in the
//! page (a captcha, an identity provider's widget) are the page's business; the window itself
//! never shows another site: a page elsewhere that the user clicked opens in their browser, and
//! one the page tries to go to by itself is refused. Other schemes (the app's own `tauri:`
//! pages, `file:`) are refused everywhere.
//!
//! WebKitGTK asks twice, and neither question has everything: when a navigation starts, it says
//! whether a user's click started it but not whether it is the window's or a frame's; when the
//! response comes, it says whether it is the window's page but not what started it. So
//! [`Navigations`] lets web pages elsewhere through the first step, remembering the ones a
//! click started, and decides at the second (or when the load fails, for a page that never
//! answers). Tauri's own navigation handler sees only the address, so on Linux the window's
//! decisions are taken over from it ([`take_over`]); elsewhere the address alone decides, as
//! [`by_address`] says.

use std::collections::VecDeque;

use tauri::Url;

/// How many clicked addresses are remembered until their response comes.
const CLICKS_REMEMBERED: usize = 16;

/// Where a navigation goes, seen from the sign-in window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The loopback redirect that carries the code.
    Redirect,
    /// The platform's sign-in origin, and the page's own blank and `srcdoc` frames.
    SignIn,
    /// Another web origin.
    Web,
    /// Anything else (`tauri:`, `file:`, `data:`…).
    Other,
}

/// What the window does with a navigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Load,
    Refuse,
    /// Refused here, and its address handed to the sign-in waiting for the code.
    Intercept(Url),
    /// Refused here, and opened in the user's browser.
    OpenInBrowser(Url),
}

#[cfg(target_os = "linux")]
impl Decision {
    /// For the log, which never shows an address: the redirect's carries the code.
    fn name(&self) -> &'static str {
        match self {
            Decision::Load => "load",
            Decision::Refuse => "refuse",
            Decision::Intercept(_) => "intercept",
            Decision::OpenInBrowser(_) => "open in the browser",
        }
    }
}

/// The sign-in window's navigations, decided as the module says.
#[derive(Debug)]
pub struct Navigations {
    sign_in: Url,
    redirect: Url,
    /// Addresses elsewhere whose navigation a click started, until their response comes.
    clicked: VecDeque<Url>,
}

/// An address without its fragment, as the start and the response of a navigation both see it.
fn without_fragment(to: &Url) -> Url {
    let mut to = to.clone();
    to.set_fragment(None);
    to
}

impl Navigations {
    pub fn new(sign_in: Url, redirect: Url) -> Navigations {
        Navigations {
            sign_in,
            redirect,
            clicked: VecDeque::new(),
        }
    }

    /// Compared by origin: a prefix test would also catch the page at `127.0.0.1:50123` for
    /// the redirect `127.0.0.1:5012`.
    fn place(&self, to: &Url) -> Place {
        if to.origin() == self.redirect.origin() {
            Place::Redirect
        } else if to.origin() == self.sign_in.origin()
            || matches!(to.as_str(), "about:blank" | "about:srcdoc")
        {
            Place::SignIn
        } else if matches!(to.scheme(), "http" | "https") {
            Place::Web
        } else {
            Place::Other
        }
    }

    /// Whether a click started the navigation to `to` (and forgets it).
    fn take_click(&mut self, to: &Url) -> bool {
        let to = without_fragment(to);
        match self.clicked.iter().position(|c| *c == to) {
            Some(i) => {
                self.clicked.remove(i);
                true
            }
            None => false,
        }
    }

    /// A navigation starts, in the window or in a frame (WebKit does not say which).
    pub fn starts(&mut self, to: &Url, by_click: bool) -> Decision {
        match self.place(to) {
            Place::Redirect => Decision::Intercept(to.clone()),
            Place::SignIn => Decision::Load,
            Place::Web => {
                if by_click {
                    if self.clicked.len() == CLICKS_REMEMBERED {
                        self.clicked.pop_front();
                    }
                    self.clicked.push_back(without_fragment(to));
                }
                // Decided when the response says whose it is.
                Decision::Load
            }
            Place::Other => Decision::Refuse,
        }
    }

    /// The page asks for a new window (a link with a target, `window.open`): never made; a
    /// click's web page goes to the browser.
    pub fn new_window(&mut self, to: &Url, by_click: bool) -> Decision {
        match self.place(to) {
            Place::Redirect => Decision::Intercept(to.clone()),
            Place::SignIn | Place::Web if by_click => Decision::OpenInBrowser(to.clone()),
            _ => Decision::Refuse,
        }
    }

    /// A response arrives, for the window's page (`window`) or a frame's.
    pub fn response(&mut self, to: &Url, window: bool) -> Decision {
        let clicked = self.take_click(to);
        if !window {
            return Decision::Load;
        }
        match self.place(to) {
            Place::SignIn => Decision::Load,
            Place::Redirect => Decision::Intercept(to.clone()),
            Place::Web if clicked => Decision::OpenInBrowser(to.clone()),
            Place::Web | Place::Other => Decision::Refuse,
        }
    }

    /// The window's page failed to load (no response to decide on): `Load` lets WebKit show
    /// its error page, which only the sign-in origin's failures get; a click's page elsewhere
    /// goes to the browser, which may reach it.
    pub fn failed(&mut self, to: &Url) -> Decision {
        let clicked = self.take_click(to);
        match self.place(to) {
            Place::SignIn => Decision::Load,
            Place::Web if clicked => Decision::OpenInBrowser(to.clone()),
            _ => Decision::Refuse,
        }
    }
}

/// The decision from the address alone, for Tauri's navigation handler where WebKitGTK's
/// questions cannot be reached: the sign-in origin loads, the redirect is intercepted, and
/// nothing else loads (a frame elsewhere included).
#[cfg(not(target_os = "linux"))]
pub fn by_address(navigations: &Navigations, to: &Url) -> Decision {
    match navigations.place(to) {
        Place::Redirect => Decision::Intercept(to.clone()),
        Place::SignIn => Decision::Load,
        Place::Web | Place::Other => Decision::Refuse,
    }
}

/// Takes the decisions on `view`'s navigations over from Tauri's handler and hands them to
/// `navigations`; `act` carries out the interceptions and browser openings.
///
/// Tauri's handler (wry's) answers every navigation from its address alone and stops the
/// signal there, so a handler of ours connected after it would never be asked; it is blocked
/// on this one web view, which has no other use for it (no plugin of the app watches
/// navigations).
#[cfg(target_os = "linux")]
pub fn take_over(
    view: &webkit2gtk::WebView,
    navigations: Navigations,
    act: impl Fn(Decision) + 'static,
) {
    use std::cell::RefCell;
    use std::rc::Rc;
    use webkit2gtk::{
        NavigationPolicyDecision, NavigationPolicyDecisionExt, PolicyDecision, PolicyDecisionExt,
        PolicyDecisionType, ResponsePolicyDecision, ResponsePolicyDecisionExt, URIRequestExt,
        WebViewExt,
    };

    block_decide_policy_handlers(view);
    let navigations = Rc::new(RefCell::new(navigations));
    let act = Rc::new(act);
    let carry_out = {
        let act = act.clone();
        move |decision: &PolicyDecision, made: Decision| {
            if made == Decision::Load {
                decision.use_();
            } else {
                decision.ignore();
                act(made);
            }
        }
    };
    let asked = navigations.clone();
    view.connect_decide_policy(move |_, decision, kind| {
        use webkit2gtk::glib::object::Cast;
        let uri_of = |request: Option<webkit2gtk::URIRequest>| {
            request
                .and_then(|r| r.uri())
                .and_then(|u| Url::parse(u.as_str()).ok())
        };
        match kind {
            PolicyDecisionType::NavigationAction | PolicyDecisionType::NewWindowAction => {
                let action = decision
                    .downcast_ref::<NavigationPolicyDecision>()
                    .and_then(|d| d.navigation_action());
                let Some(action) = action else {
                    decision.ignore();
                    return true;
                };
                let Some(to) = uri_of(action.request()) else {
                    decision.ignore();
                    return true;
                };
                let by_click = action.is_user_gesture();
                let made = if kind == PolicyDecisionType::NewWindowAction {
                    asked.borrow_mut().new_window(&to, by_click)
                } else {
                    asked.borrow_mut().starts(&to, by_click)
                };
                tracing::debug!(
                    origin = %to.origin().ascii_serialization(),
                    by_click,
                    decision = made.name(),
                    "sign-in window: a navigation starts"
                );
                carry_out(decision, made);
                true
            }
            PolicyDecisionType::Response => {
                let Some(response) = decision.downcast_ref::<ResponsePolicyDecision>() else {
                    return false;
                };
                let Some(to) = uri_of(response.request()) else {
                    return false;
                };
                let window = response.is_main_frame_main_resource();
                let made = asked.borrow_mut().response(&to, window);
                tracing::debug!(
                    origin = %to.origin().ascii_serialization(),
                    window,
                    decision = made.name(),
                    "sign-in window: a response comes"
                );
                if made == Decision::Load {
                    // WebKit's own answer (it shows what it can show, downloads nothing here).
                    return false;
                }
                carry_out(decision, made);
                true
            }
            _ => false,
        }
    });
    view.connect_load_failed(move |_, _, uri, _| {
        let Ok(to) = Url::parse(uri) else {
            return false;
        };
        match navigations.borrow_mut().failed(&to) {
            Decision::Load => false,
            made => {
                act(made);
                // Handled: no error page replaces the sign-in page.
                true
            }
        }
    });
}

/// Blocks the handlers already connected to `view`'s `decide-policy` (Tauri's).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn block_decide_policy_handlers(view: &webkit2gtk::WebView) {
    use webkit2gtk::glib::gobject_ffi;
    use webkit2gtk::glib::subclass::SignalId;
    use webkit2gtk::glib::translate::{IntoGlib, ToGlibPtr};
    use webkit2gtk::glib::StaticType;

    let Some(signal) = SignalId::lookup("decide-policy", webkit2gtk::WebView::static_type()) else {
        tracing::warn!("WebKit has no decide-policy signal");
        return;
    };
    let instance: *mut webkit2gtk::ffi::WebKitWebView = view.to_glib_none().0;
    let instance: *mut gobject_ffi::GObject = instance.cast();
    // GLib's `g_signal_handlers_block_matched` blocks nothing when matching by signal alone:
    // each unblocked handler is found and blocked in turn (there is one; a few at most).
    let mut blocked = 0;
    while blocked < 8 {
        // SAFETY: `instance` is a live GObject (`view` holds a reference for the whole call);
        // matching by signal passes no closure, function or data pointer to compare; the id
        // found is one of this instance's handlers, blocked at once on the same thread.
        let found = unsafe {
            let found = gobject_ffi::g_signal_handler_find(
                instance,
                gobject_ffi::G_SIGNAL_MATCH_ID | gobject_ffi::G_SIGNAL_MATCH_UNBLOCKED,
                signal.into_glib(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            if found != 0 {
                gobject_ffi::g_signal_handler_block(instance, found);
            }
            found
        };
        if found == 0 {
            break;
        }
        blocked += 1;
    }
    tracing::debug!(
        blocked,
        "sign-in window: Tauri's navigation handler set aside"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn navigations() -> Navigations {
        Navigations::new(
            url("https://auth.example.test/oauth2/authorize?x=1"),
            url("http://127.0.0.1:5001"),
        )
    }

    #[test]
    fn the_sign_in_pages_load_and_the_redirect_is_intercepted() {
        let mut n = navigations();
        for by_click in [false, true] {
            assert_eq!(
                n.starts(&url("https://auth.example.test/oauth2/authorize"), by_click),
                Decision::Load
            );
            let code = url("http://127.0.0.1:5001/?code=c&state=s");
            assert_eq!(n.starts(&code, by_click), Decision::Intercept(code.clone()));
        }
        assert_eq!(n.starts(&url("about:blank"), false), Decision::Load);
        assert_eq!(
            n.response(&url("https://auth.example.test/oauth2/authorize"), true),
            Decision::Load
        );
    }

    #[test]
    fn only_the_redirect_origin_is_intercepted() {
        let mut n = navigations();
        for other in [
            "http://127.0.0.1:50012/oauth2/authorize",
            "http://127.0.0.1:5002/?code=x",
            "https://127.0.0.1:5001/",
            "http://localhost:5001/",
        ] {
            assert!(
                !matches!(n.starts(&url(other), false), Decision::Intercept(_)),
                "{other}"
            );
        }
    }

    #[test]
    fn other_schemes_are_refused_in_the_window_and_in_frames() {
        let mut n = navigations();
        for to in [
            "tauri://localhost/index.html",
            "file:///etc/passwd",
            "data:text/html,<p>hi",
        ] {
            assert_eq!(n.starts(&url(to), true), Decision::Refuse, "{to}");
        }
    }

    #[test]
    fn a_frame_elsewhere_is_left_to_the_page() {
        let mut n = navigations();
        let frame = url("http://127.0.0.1:7000/frame");
        assert_eq!(n.starts(&frame, false), Decision::Load);
        assert_eq!(n.response(&frame, false), Decision::Load);
        // Clicked inside the frame: still the frame's.
        let next = url("http://127.0.0.1:7000/next");
        assert_eq!(n.starts(&next, true), Decision::Load);
        assert_eq!(n.response(&next, false), Decision::Load);
        assert!(n.clicked.is_empty(), "forgotten once answered");
    }

    #[test]
    fn the_window_goes_elsewhere_only_in_the_browser_and_only_after_a_click() {
        let mut n = navigations();
        let away = url("https://evil.example/phish");
        assert_eq!(n.starts(&away, false), Decision::Load);
        assert_eq!(n.response(&away, true), Decision::Refuse);

        let help = url("https://docs.example/help#signing-in");
        assert_eq!(n.starts(&help, true), Decision::Load);
        assert_eq!(
            n.response(&url("https://docs.example/help"), true),
            Decision::OpenInBrowser(url("https://docs.example/help"))
        );
        // Once: the same page asked again without a click is refused.
        assert_eq!(n.starts(&help, false), Decision::Load);
        assert_eq!(n.response(&help, true), Decision::Refuse);
        // The sign-in origin over plain HTTP is elsewhere too.
        let downgraded = url("http://auth.example.test/");
        n.starts(&downgraded, false);
        assert_eq!(n.response(&downgraded, true), Decision::Refuse);
    }

    #[test]
    fn a_clicked_page_that_does_not_answer_goes_to_the_browser() {
        let mut n = navigations();
        let help = url("https://docs.example/help");
        n.starts(&help, true);
        assert_eq!(n.failed(&help), Decision::OpenInBrowser(help.clone()));
        let away = url("https://evil.example/");
        n.starts(&away, false);
        assert_eq!(n.failed(&away), Decision::Refuse);
        // The platform's own page failing shows WebKit's error page.
        assert_eq!(
            n.failed(&url("https://auth.example.test/oauth2/authorize")),
            Decision::Load
        );
    }

    #[test]
    fn new_windows_are_never_made() {
        let mut n = navigations();
        let help = url("https://docs.example/help");
        assert_eq!(
            n.new_window(&help, true),
            Decision::OpenInBrowser(help.clone())
        );
        assert_eq!(n.new_window(&help, false), Decision::Refuse);
        assert_eq!(
            n.new_window(&url("tauri://localhost/"), true),
            Decision::Refuse
        );
    }

    #[test]
    fn clicks_are_remembered_up_to_a_bound() {
        let mut n = navigations();
        for i in 0..100 {
            n.starts(&url(&format!("https://docs.example/{i}")), true);
        }
        assert_eq!(n.clicked.len(), CLICKS_REMEMBERED);
    }
}
