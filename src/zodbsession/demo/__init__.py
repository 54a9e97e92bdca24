"""The demo application that ``zodbsession serve`` runs.

Plain WSGI (WebOb requests and responses) using every kind of session
data a site keeps: a page counter, a shopping cart in a container of its
own, preferences, a login, and a CSRF token guarding every form.
"""
from zodbsession.demo.app import DemoApp
from zodbsession.demo.app import make_app

__all__ = ['DemoApp', 'make_app']
